"""What the link tests share: registered devices, snapshots, a real server and a scripted
runner speaking the link protocol over a real websocket (``websockets``)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from websockets.asyncio.client import ClientConnection, connect

from apps.accounts.principal import Principal
from apps.devices.auth import hash_secret
from apps.devices.models import Device
from apps.snapshots.models import Snapshot
from apps.snapshots.services import snapshot_create
from apps.teams.models import Application
from config.asgi import application as asgi_application
from edge_runner.protocol import link, manifest
from tests.asgi_server import serve_asgi

HEARTBEAT = 0.2  # seconds, in tests
FLOWS = [
    {"id": "tab1", "type": "tab", "label": "Line"},
    {"id": "inj", "type": "inject", "z": "tab1", "wires": [["dbg"]]},
    {"id": "dbg", "type": "debug", "z": "tab1", "wires": []},
]
SECRET_FLOWS = [
    *FLOWS,
    {
        "id": "broker",
        "type": "mqtt-broker",
        "broker": "127.0.0.1",
        "credentials": {"user": "plc", "password": "canary-Pa55-xyz"},
    },
]


@dataclass
class Registered:
    device: Device
    credential: str
    sealing_private: bytes


def register(application: Application | None, name: str, *, team: Any = None) -> Registered:
    """A device as registration leaves it (rows built directly: registration is not under test)."""
    private, public = manifest.generate_sealing_key()
    credential = "mfd_" + secrets.token_urlsafe(32)
    device = Device.objects.create(
        team=team or application.team,  # type: ignore[union-attr]  # one of the two is given
        application=application,
        name=name,
        credential_hash=hash_secret(credential),
        sealing_public_key=public,
        registered_at=timezone.now(),
    )
    return Registered(device, credential, private)


def snapshot(application: Application, name: str = "v1", *, secret: bool = False) -> Snapshot:
    owner = application.team.memberships.filter(role="owner").first().user  # type: ignore[union-attr]  # every team has an owner
    return snapshot_create(
        principal=Principal.for_user(owner),
        application=application,
        name=name,
        flows=SECRET_FLOWS if secret else FLOWS,
    )


@pytest.fixture
def server(transactional_db: Any) -> Iterator[str]:
    with (
        override_settings(DEVICE_HEARTBEAT_SECONDS=HEARTBEAT),
        serve_asgi(asgi_application) as base,
    ):
        yield base.replace("http://", "ws://")


def link_url(base: str) -> str:
    return base + link.LINK_PATH


async def open_link(base: str, credential: str, **kwargs: Any) -> ClientConnection:
    return await connect(
        link_url(base),
        additional_headers={"Authorization": f"Bearer {credential}"},
        open_timeout=10,
        ping_interval=None,
        max_size=None,
        **kwargs,
    )


@dataclass
class Runner:
    """A scripted runner: the protocol side of an agent, no engine behind it."""

    socket: ClientConnection
    inbox: list[dict[str, Any]] = field(default_factory=list)
    active: dict[str, Any] | None = None
    handled: dict[str, Any] | None = None

    @classmethod
    async def join(cls, base: str, credential: str) -> tuple[Runner, dict[str, Any]]:
        runner = cls(await open_link(base, credential))
        await runner.send({"type": "hello", "protocol": 1, "agent_version": "0.1.0",
                           "state": "running", "active": None, "target": None})  # fmt: skip
        welcome = await runner.expect("welcome")
        return runner, welcome

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))

    async def recv(self, within: float = 5.0) -> dict[str, Any]:
        return dict(json.loads(await asyncio.wait_for(self.socket.recv(), within)))

    async def expect(self, kind: str, within: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            frame = await self.recv(max(0.01, deadline - time.monotonic()))
            if frame["type"] == kind:
                return frame
            self.inbox.append(frame)

    async def heartbeat(self, state: str = "running", **extra: Any) -> None:
        await self.send(
            {
                "type": "heartbeat",
                "state": state,
                "active": self.active,
                "target": self.handled,
                "resources": {"cpu_percent": 3.5, "memory_bytes": 1 << 20,
                              "disk_free_bytes": 1 << 30, "uptime_seconds": 12.0,
                              "engine_restarts": 0},
                "nodes": {"total": 3, "error": 0},
                "errors": [],
                **extra,
            }
        )  # fmt: skip

    async def closed(self, within: float = 5.0) -> int | None:
        await asyncio.wait_for(self.socket.wait_closed(), within)
        return self.socket.close_code
