"""Developer mode end to end: the real platform (uvicorn in a thread) and a real agent process
with its engine child. A member enters developer mode, reads and replaces the device's flows
through the link, sees the engine run them, injects, then leaves keeping the changes as a new
snapshot (the device applies it as its target) and, a second time, reverting to the target.
A second scenario changes a node's credentials live (an HTTP request node's basic-auth password,
checked by a loopback HTTP server reading the Authorization header) and keeps them.

Figures (round trips through the link) are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings

from apps.audit.models import AuditEvent
from apps.devices.models import DeveloperCredentials, Device, DeviceTarget
from apps.devices.services.devmode import device_dev_call
from apps.snapshots.models import Snapshot
from apps.snapshots.services import snapshot_credentials
from tests.apps.devices.test_link import db
from tests.apps.devices.test_live import cookie_of, watch
from tests.conftest import Acme
from tests.e2e.test_device_lifecycle import (
    Agent,
    Platform,
    api,
    deploy,
    device_row,
    line,
    make_snapshot,
    provision,
    running,
    settled,
    tab_labels,
    until,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def dev_line(label: str) -> list[dict[str, Any]]:
    """A tab whose inject fires only when pressed (no repeat), into a debug node that also
    shows the message as its status."""
    tab = label.lower().replace(" ", "-")
    return [
        {"id": tab, "type": "tab", "label": label},
        {"id": f"{tab}-inject", "type": "inject", "z": tab, "name": f"{label} button",
         "props": [{"p": "payload"}], "payload": f"pressed on {label}", "payloadType": "str",
         "wires": [[f"{tab}-debug"]]},
        {"id": f"{tab}-debug", "type": "debug", "z": tab, "active": True, "tosidebar": True,
         "tostatus": True, "complete": "payload", "targetType": "msg", "wires": []},
    ]  # fmt: skip


def url(device_id: int, tail: str) -> str:
    return f"/api/v1/teams/acme/devices/{device_id}/{tail}"


def applied_target(device_id: int, previous: int | None) -> DeviceTarget | None:
    device = device_row(device_id)
    target = device.target
    if target is None or target.pk == previous or target.outcome != "applied":
        return None
    return target


def test_a_member_edits_a_device_live_then_keeps_then_reverts(
    acme_world: Acme, platform: Platform, agents: Callable[[], Agent]
) -> None:
    agent = agents()
    device_id = provision(acme_world, platform, agent, "press-1")
    v1 = make_snapshot(acme_world, "v1", line("Press line"))
    first = deploy(acme_world, device_id, v1)
    assert until(lambda: settled(first), 60, f"v1 applied\n{agent.output()}").outcome == "applied"
    eddie = api(acme_world.eddie)

    entered = eddie.post(url(device_id, "developer-mode/"))
    assert entered.status_code == 200, entered.json()
    assert entered.json()["developer_mode"] is True

    took: list[float] = []

    def timed(call: Callable[[], Any]) -> Any:
        started = time.monotonic()
        answer = call()
        took.append(time.monotonic() - started)
        return answer

    flows = timed(lambda: eddie.get(url(device_id, "flows/")))
    assert flows.status_code == 200, flows.json()
    assert [n["label"] for n in flows.json()["flows"] if n["type"] == "tab"] == ["Press line"]

    # Invalid flows never reach the device: the platform's validator answers 400.
    broken = [
        {"id": "t1", "type": "tab", "label": "Broken"},
        {"id": "x1", "type": "delay", "z": "t1", "timeout": "-5", "wires": []},
    ]
    refused = eddie.post(url(device_id, "flows/"), broken, format="json")
    assert refused.status_code == 400, refused.json()
    assert refused.json()["error"]["code"] == "invalid_flows"
    assert "x1" in refused.json()["error"]["message"]

    edited = dev_line("Dev line")
    deployed = timed(lambda: eddie.post(url(device_id, "flows/"), edited, format="json"))
    assert deployed.status_code == 200, deployed.json()
    assert deployed.json()["rev"]
    state = timed(lambda: eddie.get(url(device_id, "flows/state/")))
    assert state.status_code == 200, state.json()
    assert state.json()["state"] == "start"
    assert [n["label"] for n in agent.engine("/flows") if n["type"] == "tab"] == ["Dev line"]

    # A deploy while in developer mode is refused, on the device and as the application's.
    blocked = eddie.post(url(device_id, "target/"), {"snapshot": v1.pk}, format="json")
    assert blocked.status_code == 409
    assert blocked.json()["error"]["code"] == "developer_mode"
    everyone = eddie.post(
        "/api/v1/teams/acme/applications/line-1/deploy/", {"snapshot": v1.pk}, format="json"
    )
    assert everyone.status_code == 409, everyone.json()
    assert device_row(device_id).target_id == first.pk

    # Inject: the debug message reaches a watching member through the live stream.
    base = platform.base.replace("http://", "ws://")
    device = device_row(device_id)
    cookie = cookie_of(acme_world.vera)

    async def press() -> list[dict[str, Any]]:
        socket = await watch(base, device, cookie)
        try:
            await asyncio.sleep(0.5)  # the watch lease reaches the device
            # In a thread that closes its database connection: the test client leaves it open
            # (it unhooks close_old_connections), and an open one fails the test database's
            # teardown on PostgreSQL.
            answer = await db(
                lambda: timed(lambda: eddie.post(url(device_id, "inject/dev-line-inject/")))
            )
            assert answer.status_code == 200, answer.json()
            seen: list[dict[str, Any]] = []
            deadline = time.monotonic() + 20
            while not seen and time.monotonic() < deadline:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 20))
                if frame.get("kind") == "stream":
                    seen += [i for i in frame["items"] if i.get("kind") == "debug"]
            return seen
        finally:
            await socket.close()

    debug = asyncio.run(press())
    assert debug, "no debug message after the inject"
    assert debug[0]["msg"] == "pressed on Dev line", debug

    # A path outside developer mode's few is refused by the agent itself.
    outside = asyncio.run(device_dev_call(device_row(device_id), "GET", "/settings"))
    assert outside.status == 403, outside
    assert outside.body["code"] == "forbidden_path"

    # Round trips on one event loop, as the server's own loop makes them (its reply layer
    # kept): the link's cost without the HTTP request around it. Printed, never asserted.
    async def round_trips(count: int) -> list[float]:
        times = []
        for _ in range(count):
            started = time.monotonic()
            answer = await device_dev_call(device, "GET", "/flows/state")
            times.append(time.monotonic() - started)
            assert answer.status == 200, answer
        return times

    link_times = asyncio.run(round_trips(20))

    left = eddie.delete(
        url(device_id, "developer-mode/"), {"keep": True, "name": "dev-kept"}, format="json"
    )
    assert left.status_code == 200, left.json()
    kept = Snapshot.objects.get(pk=left.json()["snapshot"])
    assert kept.name == "dev-kept"
    assert kept.parent_id == v1.pk
    assert kept.runner_settings == v1.runner_settings
    assert [n["label"] for n in kept.flows if n["type"] == "tab"] == ["Dev line"]
    assert kept.author == acme_world.eddie
    assert "developer mode on device press-1" in kept.description
    kept_target = until(
        lambda: applied_target(device_id, first.pk), 60, f"kept applied\n{agent.output()}"
    )
    assert kept_target.snapshot_id == kept.pk
    status = until(lambda: running(agent, kept_target.generation), 10, "the kept snapshot runs")
    assert tab_labels(status) == ["Dev line"]
    assert device_row(device_id).developer_mode is False

    # Again, but this time the changes go: the device runs the target's flows again.
    assert eddie.post(url(device_id, "developer-mode/")).status_code == 200
    scratch = eddie.post(url(device_id, "flows/"), dev_line("Scratch line"), format="json")
    assert scratch.status_code == 200, scratch.json()
    assert [n["label"] for n in agent.engine("/flows") if n["type"] == "tab"] == ["Scratch line"]
    reverted = eddie.delete(url(device_id, "developer-mode/"), {"keep": False}, format="json")
    assert reverted.status_code == 200, reverted.json()
    assert reverted.json()["snapshot"] is None
    assert reverted.json()["target"]["snapshot"] == kept.pk
    assert reverted.json()["target"]["generation"] > kept_target.generation
    again = until(
        lambda: applied_target(device_id, kept_target.pk), 60, f"revert applied\n{agent.output()}"
    )
    status = until(lambda: running(agent, again.generation), 10, "the target runs again")
    assert tab_labels(status) == ["Dev line"]
    assert [n["label"] for n in agent.engine("/flows") if n["type"] == "tab"] == ["Dev line"]

    # Offline: keeping needs the device's flows (refused, nothing changes); reverting does not.
    assert eddie.post(url(device_id, "developer-mode/")).status_code == 200
    agent.stop()
    until(lambda: device_row(device_id).status == "offline", 20, "the device offline")
    offline = eddie.delete(url(device_id, "developer-mode/"), {"keep": True}, format="json")
    assert offline.status_code == 409
    assert offline.json()["error"]["code"] == "device_offline"
    assert device_row(device_id).developer_mode is True
    assert eddie.get(url(device_id, "flows/")).status_code == 409
    waiting = eddie.delete(url(device_id, "developer-mode/"), {"keep": False}, format="json")
    assert waiting.status_code == 200, waiting.json()
    pending = Device.objects.get(pk=device_id).target
    assert pending is not None
    assert pending.outcome == "pending"

    events = list(
        AuditEvent.objects.filter(event__startswith="device.developer_mode.").values_list(
            "event", flat=True
        )
    )
    assert events.count("device.developer_mode.entered") == 3
    assert events.count("device.developer_mode.left") == 3
    assert events.count("device.developer_mode.deployed") == 2
    assert events.count("device.developer_mode.injected") == 1
    layer = str(settings.CHANNEL_LAYERS["default"]["BACKEND"]).rsplit(".", 1)[-1]
    print(
        f"\ndeveloper mode: {len(took)} calls through the link, "
        f"p50 {statistics.median(took) * 1000:.0f} ms, max {max(took) * 1000:.0f} ms; "
        f"{len(link_times)} bare calls on one loop ({layer}): "
        f"p50 {statistics.median(link_times) * 1000:.1f} ms, max {max(link_times) * 1000:.0f} ms"
    )


class BasicAuthSeen:
    """A loopback HTTP server that records the user:password of each request's basic auth."""

    def __init__(self) -> None:
        seen: list[str] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                header = self.headers.get("Authorization", "")
                scheme, _, token = header.partition(" ")
                seen.append(base64.b64decode(token).decode() if scheme == "Basic" else header)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/check"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def latest(self, expected: str) -> Callable[[], bool]:
        """A check for ``until``: the newest request came with ``expected``."""
        return lambda: bool(self.seen) and self.seen[-1] == expected


@pytest.fixture
def basic_auth_seen() -> Iterator[BasicAuthSeen]:
    seen = BasicAuthSeen()
    seen.thread.start()
    try:
        yield seen
    finally:
        seen.server.shutdown()
        seen.server.server_close()


def polling(url: str, **credentials: str) -> list[dict[str, Any]]:
    """A tab whose inject sends an HTTP GET with basic auth every 0.3 s; ``credentials``
    inline on the request node, as an editor sends them."""
    request: dict[str, Any] = {
        "id": "poll-request", "type": "http request", "z": "poll", "method": "GET",
        "url": url, "authType": "basic", "ret": "txt", "wires": [["poll-debug"]],
    }  # fmt: skip
    if credentials:
        request["credentials"] = credentials
    return [
        {"id": "poll", "type": "tab", "label": "Poll"},
        {"id": "poll-inject", "type": "inject", "z": "poll", "repeat": "0.3", "once": True,
         "props": [{"p": "payload"}], "payload": "", "payloadType": "str",
         "wires": [["poll-request"]]},
        request,
        {"id": "poll-debug", "type": "debug", "z": "poll", "active": True, "tosidebar": True,
         "complete": "statusCode", "targetType": "msg", "wires": []},
    ]  # fmt: skip


def test_a_member_changes_a_password_live_and_keeps_it(
    acme_world: Acme,
    platform: Platform,
    agents: Callable[[], Agent],
    basic_auth_seen: BasicAuthSeen,
) -> None:
    agent = agents()
    device_id = provision(acme_world, platform, agent, "press-1")
    seen = basic_auth_seen
    v1 = make_snapshot(acme_world, "v1", polling(seen.url, user="plc", password="old-Pa55"))
    first = deploy(acme_world, device_id, v1)
    assert until(lambda: settled(first), 60, f"v1 applied\n{agent.output()}").outcome == "applied"
    until(seen.latest("plc:old-Pa55"), 20, f"v1's credentials used\n{seen.seen[-3:]}")
    eddie = api(acme_world.eddie)
    assert eddie.post(url(device_id, "developer-mode/")).status_code == 200

    # A new password only: the engine keeps the stored user.
    started = time.monotonic()
    changed = eddie.post(url(device_id, "flows/"), polling(seen.url, password="new-Pa55"), "json")
    assert changed.status_code == 200, changed.json()
    until(seen.latest("plc:new-Pa55"), 20, f"the new password used\n{seen.seen[-3:]}")
    took = time.monotonic() - started
    # The device's flows never show them, and the platform keeps them sealed.
    read = eddie.get(url(device_id, "flows/"))
    assert "new-Pa55" not in json.dumps(read.json())
    row = DeveloperCredentials.objects.get(device_id=device_id)
    assert b"new-Pa55" not in bytes(row.credentials_sealed)
    # __PWRD__ keeps the password sent before while the user changes.
    kept_password = polling(seen.url, user="ops", password="__PWRD__")
    again = eddie.post(url(device_id, "flows/"), kept_password, format="json")
    assert again.status_code == 200, again.json()
    until(seen.latest("ops:new-Pa55"), 20, f"the new user used\n{seen.seen[-3:]}")
    # Flows sent without credentials keep what the device has.
    plain = eddie.post(url(device_id, "flows/"), polling(seen.url), format="json")
    assert plain.status_code == 200, plain.json()
    seen.seen.clear()
    until(lambda: len(seen.seen) >= 2, 20, "requests after a deploy without credentials")
    assert set(seen.seen) == {"ops:new-Pa55"}

    left = eddie.delete(url(device_id, "developer-mode/"), {"keep": True}, format="json")
    assert left.status_code == 200, left.json()
    kept = Snapshot.objects.get(pk=left.json()["snapshot"])
    assert snapshot_credentials(kept) == {"poll-request": {"user": "ops", "password": "new-Pa55"}}
    assert not DeveloperCredentials.objects.filter(device_id=device_id).exists()
    kept_target = until(
        lambda: applied_target(device_id, first.pk), 60, f"kept applied\n{agent.output()}"
    )
    assert kept_target.snapshot_id == kept.pk
    seen.seen.clear()
    until(seen.latest("ops:new-Pa55"), 20, "the kept snapshot's credentials used")

    # A scratch password, reverted: the device runs the kept target's credentials again.
    assert eddie.post(url(device_id, "developer-mode/")).status_code == 200
    scratch = eddie.post(url(device_id, "flows/"), polling(seen.url, password="scratch"), "json")
    assert scratch.status_code == 200, scratch.json()
    until(seen.latest("ops:scratch"), 20, "the scratch password used")
    reverted = eddie.delete(url(device_id, "developer-mode/"), {"keep": False}, format="json")
    assert reverted.status_code == 200, reverted.json()
    assert not DeveloperCredentials.objects.filter(device_id=device_id).exists()
    until(
        lambda: applied_target(device_id, kept_target.pk), 60, f"revert applied\n{agent.output()}"
    )
    until(seen.latest("ops:new-Pa55"), 20, "the target's credentials used again")

    audited = json.dumps(
        list(AuditEvent.objects.filter(event__startswith="device.").values_list("after", flat=True))
    )
    assert "new-Pa55" not in audited
    assert "Pa55" not in agent.output()
    print(f"\ndeveloper mode: a new password in use {took * 1000:.0f} ms after the deploy call")
