"""A small aiohttp server that speaks the device protocol, for the agent's unit tests.

It stands in for the platform (registration, ``/self``, bundles with ``Range``, the link) and
signs real manifests with ``edge_runner.protocol.manifest``; it is not the platform. The
end-to-end tests with the real platform (Django + Channels) live under tests/apps/devices.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web

from edge_runner.protocol import link, manifest

TEAM = "7"
DEVICE = "12"
CREDENTIAL = "mfd_device_credential_for_tests"
TOKEN = "mft_good_token"
ISSUED_AT = "2026-12-03T12:00:00Z"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PlatformDouble:
    """Registration, device self-check, bundles and the link of one team and one device."""

    def __init__(self) -> None:
        self.private_key, self.public_key = manifest.generate_signing_key()
        self.team = TEAM
        self.device = DEVICE
        self.credential = CREDENTIAL
        self.heartbeat_seconds: float = 15
        # registration: status to answer (201 = accept TOKEN), and what was posted
        self.register_status = 201
        self.registrations: list[dict[str, Any]] = []
        # link: HTTP status of a refused handshake (None: accept), what the device sent
        self.handshake_status: int | None = None
        self.self_answer: tuple[int, dict[str, Any]] = (200, {"id": DEVICE, "status": "active"})
        self.self_checks = 0
        self.welcome_target: dict[str, Any] | None = None
        self.welcome_keys: dict[str, Any] | None = None
        self.device_status = "active"
        self.received: list[dict[str, Any]] = []
        self.handshakes = 0
        self.handshake_times: list[float] = []
        self.ws: web.WebSocketResponse | None = None
        self.sockets: set[web.WebSocketResponse] = set()
        self._arrived = asyncio.Condition()
        # bundles: (generation, part) -> bytes; cut[(generation, part)] = bytes sent before the
        # connection is dropped (once); no_range: answer 200 with the whole part to a Range
        self.bundles: dict[tuple[int, str], bytes] = {}
        self.cut: dict[tuple[int, str], int] = {}
        self.no_range = False
        self.bytes_sent = 0
        self.ranges: list[str | None] = []
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.scheme = "http"

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    async def start(
        self, port: int | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> PlatformDouble:
        app = web.Application()
        app.router.add_post(link.REGISTER_PATH, self._register)
        app.router.add_get("/api/v1/devices/self/", self._self)
        app.router.add_get(link.BUNDLE_PATH + "{generation}/{part:.+}", self._bundle)
        app.router.add_get(link.LINK_PATH, self._link)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        self.port = port or free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=ssl_context).start()
        self.scheme = "https" if ssl_context else "http"
        return self

    async def stop(self) -> None:
        await asyncio.gather(*(ws.close(code=link.CLOSE_GOING_AWAY) for ws in self.sockets))
        if self.runner is not None:
            await self.runner.cleanup()

    # ------------------------------------------------------------------ signing
    def sign_target(
        self,
        generation: int,
        parts: dict[str, bytes],
        *,
        team: str | None = None,
        device: str | None = None,
        private_key: bytes | None = None,
        issued_at: str = ISSUED_AT,
        snapshot: str = "41",
    ) -> dict[str, Any]:
        """A ``target`` field as the platform sends it; the parts are served as its bundle."""
        envelope = manifest.sign(
            private_key=private_key or self.private_key,
            team=team or self.team,
            device=device or self.device,
            snapshot=snapshot,
            generation=generation,
            issued_at=issued_at,
            name=f"snapshot {snapshot}",
            parts=manifest.build_parts(parts),
        )
        for name, body in parts.items():
            self.bundles[(generation, name)] = body
        return {"generation": generation, "snapshot": snapshot, "manifest": envelope}

    def signed_keys(self, keys: list[bytes], private_key: bytes | None = None) -> dict[str, Any]:
        return manifest.sign_keys(
            private_key=private_key or self.private_key, team=self.team, keys=keys
        )

    # ------------------------------------------------------------------ the link
    async def send(self, message: dict[str, Any] | str) -> None:
        assert self.ws is not None, "no device connected"
        await self.ws.send_str(message if isinstance(message, str) else json.dumps(message))

    async def wait_for(
        self,
        kind: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda m: True,
        *,
        after: int = 0,
        within: float = 10.0,
    ) -> dict[str, Any]:
        """The first message of ``kind`` (from index ``after``) matching ``predicate``."""

        def found() -> dict[str, Any] | None:
            for message in self.received[after:]:
                if message.get("type") == kind and predicate(message):
                    return message
            return None

        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: found() is not None)
        result = found()
        assert result is not None
        return result

    async def count(self, kind: str, number: int, within: float = 30.0) -> None:
        """Wait until ``number`` messages of ``kind`` arrived."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(
                lambda: sum(1 for m in self.received if m.get("type") == kind) >= number
            )

    async def connected(self, within: float = 10.0) -> None:
        await self.wait_for(link.HELLO, within=within)

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.credential}"

    async def _link(self, request: web.Request) -> web.StreamResponse:
        self.handshakes += 1
        self.handshake_times.append(asyncio.get_running_loop().time())
        if self.handshake_status is not None or not self._authorized(request):
            return web.json_response({"code": "refused"}, status=self.handshake_status or 403)
        ws = web.WebSocketResponse(max_msg_size=link.MAX_FRAME_BYTES)
        await ws.prepare(request)
        self.ws = ws
        self.sockets.add(ws)
        async for frame in ws:
            message = link.decode(frame.data, allowed=link.DEVICE_TYPES)
            async with self._arrived:
                self.received.append(message)
                self._arrived.notify_all()
            if message["type"] == link.HELLO:
                await ws.send_str(
                    link.encode(
                        {
                            "type": link.WELCOME,
                            "protocol": link.PROTOCOL_VERSION,
                            "device": {
                                "id": self.device,
                                "name": "press 4",
                                "status": self.device_status,
                            },
                            "heartbeat_seconds": self.heartbeat_seconds,
                            "keys": self.welcome_keys,
                            "target": self.welcome_target,
                        }
                    )
                )
        self.sockets.discard(ws)
        return ws

    # ------------------------------------------------------------------ HTTP
    async def _register(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.registrations.append(body)
        if self.register_status == 429:
            return web.json_response(
                {"code": "throttled", "message": "slow down"},
                status=429,
                headers={"Retry-After": "30"},
            )
        if self.register_status == 400 or "sealing_key" not in body:
            return web.json_response(
                {"code": "malformed", "message": "sealing_key: not a valid X25519 key"},
                status=400,
            )
        if self.register_status == 401 or body.get("token") != TOKEN:
            return web.json_response({"code": "invalid_token", "message": "invalid"}, status=401)
        return web.json_response(
            {
                "device": {
                    "id": int(self.device),
                    "name": body.get("name", "dev"),
                    "team": self.team,
                },
                "credential": self.credential,
                "signing_keys": [manifest.public_key_b64(self.public_key)],
                "protocol": 1,
                "heartbeat_seconds": self.heartbeat_seconds,
            },
            status=201,
        )

    async def _self(self, request: web.Request) -> web.Response:
        self.self_checks += 1
        status, body = self.self_answer
        return web.json_response(body, status=status)

    async def _bundle(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"code": "invalid_credential"}, status=401)
        key = (int(request.match_info["generation"]), request.match_info["part"])
        body = self.bundles.get(key)
        if body is None:
            return web.json_response({"code": "not_found"}, status=404)
        asked = request.headers.get("Range")
        self.ranges.append(asked)
        start = 0
        if asked and not self.no_range:
            start = int(asked.removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                return web.Response(status=416)
        answer = web.StreamResponse(status=206 if start else 200)
        answer.content_length = len(body) - start
        await answer.prepare(request)
        rest = body[start:]
        cut = self.cut.pop(key, None)
        if cut is not None:
            await answer.write(rest[:cut])
            self.bytes_sent += len(rest[:cut])
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.close()
            return answer
        try:
            for offset in range(0, len(rest), 64 * 1024):
                await answer.write(rest[offset : offset + 64 * 1024])
                self.bytes_sent += len(rest[offset : offset + 64 * 1024])
            await answer.write_eof()
        except ConnectionError:
            pass  # the device stopped reading (a part over its bound): nothing more to send
        return answer
