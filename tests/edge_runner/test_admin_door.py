"""Issue #7, the runner's door (RELIABILITY.md families 33 and 37), replayed over real sockets
against a real ``Server`` and a real ``python -m edge_runner serve``.

The attack: a web page on any origin (or a DNS-rebound name) posts a flow ``http in ->
python-function -> http response`` that serves ``/etc/passwd``. Every variant must be refused
with a 4xx JSON ``{code, message}`` and leave the flows unchanged on disk, in ``GET /flows`` and
in what runs (the attack route stays 404). Bodies must arrive whole or be refused with 413.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_runner.runtime import http_routes
from edge_runner.runtime import server as server_module
from edge_runner.runtime.admin_guard import AdminGuard, AdminGuardError
from edge_runner.runtime.paths import RunnerPaths
from edge_runner.runtime.server import Server
from tests.edge_runner.test_server import free_port, probe_flow, start_cli, wait_ready

TOKEN = "door-test-token-0123456789abcdef"
EVIL = "http://evil.example"
JSON_HEADERS = {"Content-Type": "application/json"}
ATTACK = [
    {"id": "at", "type": "tab", "label": "attack"},
    {
        "id": "ain",
        "type": "http in",
        "z": "at",
        "url": "/passwd",
        "method": "get",
        "wires": [["afn"]],
    },
    {
        "id": "afn",
        "type": "python-function",
        "z": "at",
        "func": "msg['payload'] = open('/etc/passwd').read()\nreturn msg",
        "wires": [["aout"]],
    },
    {"id": "aout", "type": "http response", "z": "at", "wires": []},
]
ATTACK_BODY = json.dumps(ATTACK)


@dataclass
class Door:
    """A started runner with known flows, and a client to knock with."""

    server: Server
    client: aiohttp.ClientSession
    auth: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def own_origin(self) -> str:
        return self.base

    def stored(self) -> bytes:
        return self.server.paths.flows.read_bytes()

    async def get_flows(self) -> Any:
        async with self.client.get(f"{self.base}/flows", headers=self.auth) as r:
            assert r.status == 200
            return await r.json()

    async def knock(
        self, method: str, path: str, headers: dict[str, str], body: str | bytes | None = None
    ) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
        async with self.client.request(method, self.base + path, headers=headers, data=body) as r:
            assert r.content_type == "application/json", await r.text()
            return r.status, await r.json(), r

    async def assert_nothing_deployed(self, stored: bytes, flows: Any) -> None:
        assert self.stored() == stored
        assert await self.get_flows() == flows
        async with self.client.get(f"{self.base}/passwd") as r:
            assert r.status == 404


async def open_door(
    tmp_path: Path, token: str | None = None, allowed_hosts: tuple[str, ...] = ()
) -> AsyncIterator[Door]:
    server = Server(
        "127.0.0.1",
        0,
        RunnerPaths(tmp_path / "userdir"),
        credential_secret="door-secret",
        admin_token=token,
        allowed_hosts=allowed_hosts,
    )
    await server.start()
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with aiohttp.ClientSession() as client:
            door = Door(server, client, auth)
            async with client.post(
                f"{door.base}/flows", json=probe_flow("known"), headers=auth
            ) as r:
                assert r.status == 204
            yield door
    finally:
        await server.stop()


@pytest.fixture
async def door(tmp_path: Path) -> AsyncIterator[Door]:
    async for opened in open_door(tmp_path):
        yield opened


@pytest.fixture
async def locked_door(tmp_path: Path) -> AsyncIterator[Door]:
    async for opened in open_door(tmp_path, token=TOKEN):
        yield opened


# ------------------------------------------------------------------- family 33: the local door

ATTACKS = {
    # the replay: a page on another origin posts text/plain (no CORS preflight needed)
    "foreign origin, text/plain": (
        {"Content-Type": "text/plain", "Origin": EVIL},
        403,
        "origin_not_allowed",
    ),
    "foreign origin, JSON": ({**JSON_HEADERS, "Origin": EVIL}, 403, "origin_not_allowed"),
    "sandboxed page (Origin null)": ({**JSON_HEADERS, "Origin": "null"}, 403, "origin_not_allowed"),
    "origin on another port": (
        {**JSON_HEADERS, "Origin": "http://127.0.0.1:1"},
        403,
        "origin_not_allowed",
    ),
    "DNS rebinding (Host evil.example)": (
        {**JSON_HEADERS, "Host": "evil.example:1880"},
        421,
        "host_not_allowed",
    ),
    "rebinding with a matching origin": (
        {**JSON_HEADERS, "Host": "evil.example", "Origin": EVIL},
        421,
        "host_not_allowed",
    ),
    "garbled Host": ({**JSON_HEADERS, "Host": "a b:x"}, 400, "bad_host"),
    "text/plain from a same-origin script": (
        {"Content-Type": "text/plain"},
        415,
        "unsupported_media_type",
    ),
    "HTML form post": (
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
    ),
    "no content type": ({}, 415, "unsupported_media_type"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_the_attack_replayed_is_refused_and_deploys_nothing(door: Door, attack: str) -> None:
    headers, status, code = ATTACKS[attack]
    stored, flows = door.stored(), await door.get_flows()
    got, body, _ = await door.knock("POST", "/flows", headers, ATTACK_BODY)
    assert (got, body["code"]) == (status, code)
    assert isinstance(body["message"], str)
    assert body["message"]
    await door.assert_nothing_deployed(stored, flows)


async def test_reads_and_injects_pass_the_same_door(door: Door) -> None:
    for method, path in (("GET", "/flows"), ("POST", "/inject/pin"), ("POST", "/FLOWS/")):
        status, body, _ = await door.knock(method, path, {**JSON_HEADERS, "Host": "evil.example"})
        assert (status, body["code"]) == (421, "host_not_allowed"), path
        status, body, _ = await door.knock(method, path, {**JSON_HEADERS, "Origin": EVIL})
        assert (status, body["code"]) == (403, "origin_not_allowed"), path
    status, body, _ = await door.knock("POST", "/inject/pin", {"Content-Type": "text/plain"})
    assert (status, body["code"]) == (415, "unsupported_media_type")


async def test_a_preflight_is_refused_without_cors_headers(door: Door) -> None:
    stored, flows = door.stored(), await door.get_flows()
    preflight = {"Access-Control-Request-Method": "POST"}
    for headers in (preflight, {**preflight, "Origin": EVIL}):
        status, body, response = await door.knock("OPTIONS", "/flows", headers)
        assert status == 403
        assert body["code"] in ("cors_refused", "origin_not_allowed")
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    await door.assert_nothing_deployed(stored, flows)


async def test_refusals_are_logged_without_flooding_the_log(
    door: Door, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="edge_runner.admin_guard"):
        for _ in range(50):
            await door.knock("POST", "/flows", {"Origin": EVIL}, ATTACK_BODY)
    lines = [r.getMessage() for r in caplog.records if r.name == "edge_runner.admin_guard"]
    assert len(lines) == 1
    assert "refused POST /flows" in lines[0]
    assert "'http://evil.example'" in lines[0]
    assert TOKEN not in repr(AdminGuard.build("127.0.0.1", TOKEN))


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:1880", "127.0.0.1", "127.1.2.3:80", "[::1]", "[::1]:1880"]
)
async def test_loopback_hosts_and_the_own_origin_are_let_in(door: Door, host: str) -> None:
    async with door.client.get(f"{door.base}/flows", headers={"Host": host}) as r:
        assert r.status == 200
    own = {"Host": host, "Origin": f"http://{host.lower()}"}
    async with door.client.post(f"{door.base}/flows", json=probe_flow("own"), headers=own) as r:
        assert r.status == 204
    async with door.client.get(f"{door.base}/probe/own") as r:
        assert r.status == 200


async def test_a_configured_host_is_let_in_and_others_are_not(tmp_path: Path) -> None:
    async for door in open_door(tmp_path, allowed_hosts=("Runner.Plant.example",)):
        async with door.client.get(
            f"{door.base}/flows", headers={"Host": "runner.plant.example:1880"}
        ) as r:
            assert r.status == 200
        status, body, _ = await door.knock("GET", "/flows", {"Host": "plant.example"})
        assert (status, body["code"]) == (421, "host_not_allowed")


async def test_http_in_routes_are_user_routes_outside_the_door(door: Door) -> None:
    """Decision (README): like Node-RED without httpNodeAuth, http in routes are served
    whatever the Host or Origin; only the Admin API and /comms are guarded."""
    async with door.client.get(
        f"{door.base}/probe/known", headers={"Host": "evil.example", "Origin": EVIL}
    ) as r:
        assert r.status == 200


def door_oracle(method: str, host: str, origin: str | None, media: str | None, auth: str) -> str:
    """What the door must answer (README, "Runner security"): the first failed rule's code,
    or "pass"."""
    if host.startswith("evil."):
        return "host_not_allowed"
    if origin is not None and origin != f"http://{host}":
        return "origin_not_allowed"
    if method == "OPTIONS":
        return "cors_refused"
    if auth != f"Bearer {TOKEN}":
        return "unauthorized"
    if method in ("POST", "DELETE") and (media or "").partition(";")[0] != "application/json":
        return "unsupported_media_type"
    return "pass"


@pytest.mark.slow
async def test_every_combination_at_the_door_is_refused_or_let_in_as_the_rules_say(
    locked_door: Door,
) -> None:
    """Family 33: 1 800 requests, every combination of method, Host, Origin, content type and
    token; each refusal is a 4xx JSON and deploys nothing, each pass does what it asked."""
    door = locked_door
    port = door.server.port
    known_rev, known = door.server.storage.rev, await door.get_flows()
    counts: dict[str, int] = {}
    for method, host, origin_of, media, auth in itertools.product(
        ("POST", "GET", "OPTIONS", "DELETE"),
        (f"127.0.0.1:{port}", "localhost", f"[::1]:{port}", "evil.example", f"evil.example:{port}"),
        (None, "own", EVIL, "null", f"https://127.0.0.1:{port}"),
        (
            None,
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ),
        ("", f"Bearer {TOKEN}", "Bearer wrong-token-0123456789"),
    ):
        origin = f"http://{host}" if origin_of == "own" else origin_of
        headers = {"Host": host}
        for name, value in (("Origin", origin), ("Content-Type", media), ("Authorization", auth)):
            if value:
                headers[name] = value
        expected = door_oracle(method, host, origin, media, auth)
        counts[expected] = counts.get(expected, 0) + 1
        body = ATTACK_BODY.encode() if method == "POST" else None
        async with door.client.request(
            method, f"{door.base}/flows", headers=headers, data=body
        ) as r:
            if expected != "pass":
                assert 400 <= r.status < 500, (headers, method)
                assert (await r.json())["code"] == expected, (headers, method)
                assert door.server.storage.rev == known_rev, (headers, method)
                continue
            assert r.status == {"GET": 200, "POST": 204, "DELETE": 404}[method], headers
        if method == "POST":  # the attack went in through the front door: put things back
            async with door.client.post(f"{door.base}/flows", json=known, headers=door.auth) as r:
                assert r.status == 204
            known_rev = door.server.storage.rev
    await door.assert_nothing_deployed(door.stored(), known)
    print("door outcomes:", dict(sorted(counts.items())))


# ------------------------------------------------------------------------------- the token


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN],
)
async def test_without_the_right_token_nothing_is_deployed(
    locked_door: Door, authorization: str | None
) -> None:
    stored, flows = locked_door.stored(), await locked_door.get_flows()
    headers = dict(JSON_HEADERS)
    if authorization is not None:
        headers["Authorization"] = authorization
    for method, path, body in (("POST", "/flows", ATTACK_BODY), ("GET", "/flows", None)):
        status, doc, response = await locked_door.knock(method, path, headers, body)
        assert (status, doc["code"]) == (401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    await locked_door.assert_nothing_deployed(stored, flows)


async def test_the_right_token_deploys(locked_door: Door) -> None:
    async with locked_door.client.post(
        f"{locked_door.base}/flows",
        json=probe_flow("authorized"),
        headers={"Authorization": f"bearer {TOKEN}"},
    ) as r:
        assert r.status == 204
    async with locked_door.client.get(f"{locked_door.base}/probe/authorized") as r:
        assert r.status == 200


# ---------------------------------------------------------------------------------- /comms


def upgrade_headers(**extra: str) -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **extra,
    }


async def test_comms_refuses_a_foreign_origin_or_host_before_the_upgrade(door: Door) -> None:
    for extra, status, code in (
        ({"Origin": EVIL}, 403, "origin_not_allowed"),
        ({"Host": "evil.example"}, 421, "host_not_allowed"),
    ):
        got, body, _ = await door.knock("GET", "/comms", upgrade_headers(**extra))
        assert (got, body["code"]) == (status, code)
    assert door.server.hub.connections == set()
    async with door.client.ws_connect(f"{door.base}/comms", origin=door.own_origin) as ws:
        await ws.send_json({"subscribe": "status/#"})
        assert len(door.server.hub.connections) == 1


async def test_comms_needs_the_token_when_one_is_set(locked_door: Door) -> None:
    for extra in ({}, {"Authorization": "Bearer nope-nope-nope-nope"}):
        got, body, _ = await locked_door.knock("GET", "/comms", upgrade_headers(**extra))
        assert (got, body["code"]) == (401, "unauthorized")
    assert locked_door.server.hub.connections == set()
    async with locked_door.client.ws_connect(
        f"{locked_door.base}/comms", headers=locked_door.auth
    ) as ws:
        await ws.send_json({"subscribe": "#"})
        assert len(locked_door.server.hub.connections) == 1


# --------------------------------------------------------------------------- refused startup


def test_a_non_loopback_address_without_a_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AdminGuardError, match="not a loopback address"):
        Server("0.0.0.0", 0, RunnerPaths(tmp_path), credential_secret="s")  # noqa: S104  (never bound)
    anywhere = Server("0.0.0.0", 0, RunnerPaths(tmp_path), credential_secret="s", admin_token=TOKEN)  # noqa: S104
    assert anywhere.guard.allowed_hosts == frozenset()
    lan = Server("192.0.2.1", 0, RunnerPaths(tmp_path), credential_secret="s", admin_token=TOKEN)
    assert lan.guard.allowed_hosts == {"192.0.2.1"}  # clients reach it by that address


def run_cli(*options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_runner", "serve", *options],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow  # the CLI in subprocesses: outside `make test-fast`
def test_the_cli_refuses_an_open_door_in_one_line(tmp_path: Path) -> None:
    no_token = {"MANIFOLD_RUNNER_ADMIN_TOKEN": ""}
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    shared = tmp_path / "shared"
    shared.write_text(TOKEN)
    shared.chmod(0o644)
    cases = [
        (["--host", "0.0.0.0"], no_token, "is not a loopback address"),  # noqa: S104
        (["--host", "192.0.2.1"], no_token, "is not a loopback address"),
        (["--admin-token-file", str(tmp_path / "missing")], {}, "is unreadable"),
        (["--admin-token-file", str(empty)], {}, "is empty"),
        (["--admin-token-file", str(shared)], {}, "readable by every user"),
        ([], {"MANIFOLD_RUNNER_ADMIN_TOKEN": "short"}, "at least 16 characters"),
        (["--allowed-host", "http://x.example/"], no_token, "without port or scheme"),
    ]
    for options, env, reason in cases:
        out = run_cli(
            "--port", str(free_port()), "--userdir", str(tmp_path / "u"), *options, env=env
        )
        assert out.returncode == 2, (options, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, (options, out.stderr)
        assert reason in lines[0], (options, out.stderr)
    assert not (tmp_path / "u" / "flows.json").exists()


@pytest.mark.slow
async def test_the_cli_with_a_token_file_keeps_the_door_shut(tmp_path: Path) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    proc = start_cli(tmp_path / "ud", port, "--admin-token-file", str(token_file))
    try:
        async with aiohttp.ClientSession() as client:
            await wait_ready(client, port, proc, headers=auth)
            flows_file = tmp_path / "ud" / "flows.json"
            before = flows_file.read_bytes() if flows_file.exists() else None
            for headers, status in (
                ({"Content-Type": "text/plain", "Origin": EVIL}, 403),
                ({"Content-Type": "text/plain"}, 401),
                ({"Content-Type": "text/plain", **auth}, 415),
                ({**JSON_HEADERS, **auth, "Host": "evil.example"}, 421),
            ):
                async with client.post(f"{base}/flows", data=ATTACK_BODY, headers=headers) as r:
                    assert r.status == status
                    assert set(await r.json()) == {"code", "message"}
            assert (flows_file.read_bytes() if flows_file.exists() else None) == before
            async with client.get(f"{base}/passwd") as r:
                assert r.status == 404
            async with client.get(f"{base}/flows", headers=auth) as r:
                assert await r.json() == []
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0


# ------------------------------------------------------------------ bad deploys: 4xx JSON only


async def test_a_deeply_nested_body_is_a_400(door: Door) -> None:
    stored, flows = door.stored(), await door.get_flows()
    for depth in (200_000, 101):
        body = "[" * depth + "]" * depth
        status, doc, _ = await door.knock("POST", "/flows", JSON_HEADERS, body)
        assert (status, doc["code"]) == (400, "unexpected_error")
        assert "nested deeper than 100" in doc["message"]
    await door.assert_nothing_deployed(stored, flows)


@pytest.mark.parametrize("z", [{}, {"a": 1}, [1], 5])
async def test_a_node_with_a_non_string_z_is_a_per_node_400(door: Door, z: Any) -> None:
    stored, flows = door.stored(), await door.get_flows()
    bad = [*ATTACK[:1], {"id": "n1", "type": "comment", "z": z}]
    status, doc, _ = await door.knock("POST", "/flows", JSON_HEADERS, json.dumps(bad))
    assert (status, doc["code"]) == (400, "invalid_flows")
    assert [e["id"] for e in doc["errors"]] == ["n1"]
    await door.assert_nothing_deployed(stored, flows)


async def test_an_admin_body_over_the_limit_is_a_json_413(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "MAX_ADMIN_BODY", 1000)
    async for door in open_door(tmp_path):
        stored, flows = door.stored(), await door.get_flows()
        status, doc, _ = await door.knock("POST", "/flows", JSON_HEADERS, "[" + " " * 2000 + "]")
        assert status == 413
        assert set(doc) == {"code", "message"}
        await door.assert_nothing_deployed(stored, flows)


# -------------------------------------------------------- family 37: http in bodies arrive whole

ECHO = [
    {"id": "et", "type": "tab"},
    {
        "id": "ein",
        "type": "http in",
        "z": "et",
        "url": "/echo",
        "method": "post",
        "wires": [["eo"]],
    },
    {"id": "eo", "type": "http response", "z": "et", "wires": []},
]


@pytest.fixture
async def echo(door: Door) -> Door:
    async with door.client.post(f"{door.base}/flows", json=ECHO) as r:
        assert r.status == 204
    return door


async def raw_exchange(port: int, parts: list[bytes], pause: float = 0.2) -> tuple[int, bytes]:
    """Send ``parts`` as separate writes with a pause between them; the status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index, part in enumerate(parts):
            if index:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return status, await reader.readexactly(length)
    finally:
        writer.close()


def request_head(size: int | None) -> bytes:
    framing = f"Content-Length: {size}" if size is not None else "Transfer-Encoding: chunked"
    return (
        "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n"
    ).encode()


def chunked(body: bytes, size: int = 65536) -> list[bytes]:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return [f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks] + [b"0\r\n\r\n"]


async def test_a_body_in_two_writes_arrives_whole(echo: Door) -> None:
    body = os.urandom(20_000)
    parts = [request_head(len(body)) + body[:10_000], body[10_000:]]
    assert await raw_exchange(echo.server.port, parts) == (200, body)


async def test_a_chunked_body_arrives_whole_up_to_the_limit(echo: Door) -> None:
    body = os.urandom(http_routes.MAX_BODY)
    status, got = await raw_exchange(
        echo.server.port, [request_head(None), b"".join(chunked(body))], pause=0.05
    )
    assert (status, len(got)) == (200, len(body))
    assert got == body


async def test_a_chunked_body_over_the_limit_is_a_413(echo: Door) -> None:
    body = os.urandom(http_routes.MAX_BODY + 1)
    status, got = await raw_exchange(
        echo.server.port, [request_head(None), b"".join(chunked(body))], pause=0.05
    )
    assert status == 413
    assert b"larger than" in got


async def test_a_deeply_nested_json_body_to_http_in_is_a_400(echo: Door) -> None:
    async with echo.client.post(
        f"{echo.base}/echo", data="[" * 100_000 + "]" * 100_000, headers=JSON_HEADERS
    ) as r:
        assert r.status == 400
        assert "nested deeper" in await r.text()
