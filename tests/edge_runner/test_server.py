"""Standalone mode: the Admin API, /comms and storage of the real server on 127.0.0.1, and the
CLI as a subprocess (startup, persistence across restarts, SIGTERM)."""

import asyncio
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import edge_runner.runtime.comms as comms
import edge_runner.runtime.storage as storage_module
from edge_runner.runtime.comms import topic_matches
from edge_runner.runtime.paths import RunnerPaths
from edge_runner.runtime.server import Server
from edge_runner.runtime.storage import FlowStorage, revision

EMPTY_REV = "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
V2 = {"Node-RED-API-Version": "v2"}


class Runner:
    def __init__(self, server: Server, client: aiohttp.ClientSession) -> None:
        self.server = server
        self.client = client
        self.base = f"http://127.0.0.1:{server.port}"

    async def get_flows(self) -> dict[str, Any]:
        async with self.client.get(f"{self.base}/flows", headers=V2) as r:
            assert r.status == 200
            doc: dict[str, Any] = await r.json()
            return doc

    async def deploy(
        self, flows: Any, rev: str | None = None, kind: str = "full"
    ) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"flows": flows}
        if rev is not None:
            body["rev"] = rev
        headers = {**V2, "Node-RED-Deployment-Type": kind}
        async with self.client.post(f"{self.base}/flows", json=body, headers=headers) as r:
            return r.status, await r.json()

    async def probe(self, path: str) -> tuple[int, str]:
        async with self.client.get(self.base + path) as r:
            return r.status, await r.text()


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[Runner]:
    server = Server(
        "127.0.0.1", 0, RunnerPaths(tmp_path / "userdir"), credential_secret="test-secret"
    )
    await server.start()
    try:
        async with aiohttp.ClientSession() as client:
            yield Runner(server, client)
    finally:
        await server.stop()


def probe_flow(tag: str, extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """A tab with http in GET /probe/<tag> -> http response answering the tag (a JSON string
    payload set by an inject-free chain: the response node gets msg.payload = query)."""
    return [
        {"id": "t1", "type": "tab", "label": "test"},
        {
            "id": "pin",
            "type": "http in",
            "z": "t1",
            "url": f"/probe/{tag}",
            "method": "get",
            "x": 1,
            "y": 1,
            "wires": [["pout"]],
        },
        {
            "id": "pout",
            "type": "http response",
            "z": "t1",
            "statusCode": "",
            "headers": {"X-Tag": tag},
            "x": 2,
            "y": 1,
            "wires": [],
        },
        *(extra or []),
    ]


def inject_debug(tab: str = "t1") -> list[dict[str, Any]]:
    return [
        {
            "id": "inj",
            "type": "inject",
            "z": tab,
            "payload": "7",
            "payloadType": "num",
            "topic": "tp",
            "x": 1,
            "y": 2,
            "wires": [["dbg"]],
        },
        {
            "id": "dbg",
            "type": "debug",
            "z": tab,
            "name": "sink",
            "active": True,
            "tosidebar": True,
            "complete": "payload",
            "targetType": "msg",
            "tostatus": True,
            "x": 2,
            "y": 2,
            "wires": [],
        },
    ]


# ---------------------------------------------------------------------------- GET/POST /flows


async def test_fresh_runner_has_no_flows_and_node_reds_empty_rev(runner: Runner) -> None:
    async with runner.client.get(f"{runner.base}/flows") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
        assert await r.json() == []
    assert await runner.get_flows() == {"flows": [], "rev": EMPTY_REV}


async def test_deploy_returns_rev_serves_the_flow_and_stores_it(runner: Runner) -> None:
    flows = probe_flow("one")
    status, body = await runner.deploy(flows, rev=EMPTY_REV)
    assert status == 200
    assert await runner.get_flows() == {"flows": flows, "rev": body["rev"]}
    assert await runner.probe("/probe/one") == (200, "{}")
    stored = runner.server.paths.flows.read_bytes()
    assert json.loads(stored) == flows
    assert revision(stored) == body["rev"]


async def test_stale_rev_is_409_and_changes_nothing(runner: Runner) -> None:
    _, first = await runner.deploy(probe_flow("a"))
    status, body = await runner.deploy(probe_flow("b"), rev=EMPTY_REV)
    assert (status, body) == (409, {"code": "version_mismatch", "message": "Error"})
    assert (await runner.get_flows())["rev"] == first["rev"]
    assert (await runner.probe("/probe/a"))[0] == 200
    assert (await runner.probe("/probe/b"))[0] == 404


async def test_api_v1_deploy_is_204(runner: Runner) -> None:
    async with runner.client.post(f"{runner.base}/flows", json=probe_flow("v1")) as r:
        assert r.status == 204
    async with runner.client.get(f"{runner.base}/flows") as r:
        assert [n["id"] for n in await r.json()] == ["t1", "pin", "pout"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('{"flows": {"not": "an array"}}', "JSON array"),
        ("[1, 2", "not valid JSON"),
        ('{"flows": [{"id": "x", "type": "tab", "n": NaN}]}', "NaN"),
        ("[]", "JSON object"),
    ],
)
async def test_unusable_body_is_400(runner: Runner, body: str, fragment: str) -> None:
    headers = {**V2, "Content-Type": "application/json"}
    async with runner.client.post(f"{runner.base}/flows", data=body, headers=headers) as r:
        assert r.status == 400
        doc = await r.json()
    assert doc["code"] == "unexpected_error"
    assert fragment in doc["message"]
    assert await runner.get_flows() == {"flows": [], "rev": EMPTY_REV}


async def test_rejected_deploy_lists_node_errors_and_old_flows_keep_running(
    runner: Runner,
) -> None:
    await runner.deploy(probe_flow("good"))
    before = await runner.get_flows()
    stored_before = runner.server.paths.flows.read_bytes()
    bad = probe_flow(
        "bad",
        [
            {"id": "w", "type": "debug", "z": "t1", "x": 1, "y": 4, "wires": "missing"},
            {"id": "c", "type": "inject", "z": "t1", "crontab": "bogus", "x": 1, "y": 5},
        ],
    )
    status, body = await runner.deploy(bad)
    assert status == 400
    assert body["code"] == "invalid_flows"
    errors = {e["id"]: e["error"] for e in body["errors"]}
    assert "list of lists" in errors["w"]
    assert "crontab" in errors["c"]
    assert await runner.get_flows() == before
    assert runner.server.paths.flows.read_bytes() == stored_before
    assert (await runner.probe("/probe/good"))[0] == 200
    assert not list(runner.server.paths.root.glob(".flows.json.*.tmp"))


async def test_bad_deployment_type_header_is_400(runner: Runner) -> None:
    status, body = await runner.deploy(probe_flow("x"), kind="everything")
    assert status == 400
    assert "Deployment-Type" in body["message"]


async def test_nodes_deploy_restarts_only_changed_nodes(runner: Runner) -> None:
    flows = probe_flow("n1", inject_debug())
    await runner.deploy(flows)
    engine = runner.server.engine
    inject_before = engine.nodes["inj"].node
    changed = json.loads(json.dumps(flows))
    changed[1]["url"] = "/probe/n2"
    status, _ = await runner.deploy(changed, kind="nodes")
    assert status == 200
    assert engine.nodes["inj"].node is inject_before
    assert (await runner.probe("/probe/n2"))[0] == 200
    assert (await runner.probe("/probe/n1"))[0] == 404


async def test_credentials_are_not_stored_in_flows_json(runner: Runner) -> None:
    flows = probe_flow("c")
    flows[1]["credentials"] = {"user": "canary-user-x", "password": "canary-pass-x"}
    status, _ = await runner.deploy(flows)
    assert status == 200
    stored = runner.server.paths.flows.read_text()
    assert "canary" not in stored
    assert "canary" not in json.dumps(await runner.get_flows())


async def test_storage_failure_refuses_the_deploy_and_keeps_the_old_flows(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    await runner.deploy(probe_flow("old"))
    userdir = runner.server.paths.root
    stored = {p.name: p.read_bytes() for p in userdir.iterdir() if p.is_file()}
    real_write = storage_module._write_temp

    def disk_full_at_the_credentials(directory: Path, name: str, data: bytes) -> Path:
        if name == "flows_cred.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(directory, name, data)

    monkeypatch.setattr(storage_module, "_write_temp", disk_full_at_the_credentials)
    new = probe_flow("new")
    new[1]["credentials"] = {"user": "u", "password": "p"}
    status, body = await runner.deploy(new)
    assert status == 500
    assert body["code"] == "storage_error"
    assert (await runner.probe("/probe/old"))[0] == 200
    assert (await runner.probe("/probe/new"))[0] == 404
    assert {p.name: p.read_bytes() for p in userdir.iterdir() if p.is_file()} == stored


# ---------------------------------------------------------------------------- /inject


async def test_inject_button_and_unknown_node(runner: Runner) -> None:
    await runner.deploy(probe_flow("i", inject_debug()))
    async with runner.client.post(f"{runner.base}/inject/inj", json={}) as r:
        assert (r.status, await r.text()) == (200, "OK")
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    async with runner.client.post(f"{runner.base}/inject/nope", json={}) as r:
        assert (r.status, await r.text()) == (404, "Not Found")
    async with runner.client.post(
        f"{runner.base}/inject/inj", data="{bad", headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400


# ---------------------------------------------------------------------------- /comms


async def frames(
    ws: aiohttp.ClientWebSocketResponse, count: int, topic: str | None = None, within: float = 3.0
) -> list[dict[str, Any]]:
    """Collect ``count`` items (optionally of one topic); every frame must be a JSON array."""
    items: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while len(items) < count:
        frame = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        assert frame.type == aiohttp.WSMsgType.TEXT, frame
        batch = json.loads(frame.data)
        assert isinstance(batch, list)
        items += [i for i in batch if topic is None or i["topic"] == topic]
    return items


async def test_comms_debug_status_and_retained_replay(runner: Runner) -> None:
    await runner.deploy(probe_flow("d", inject_debug()))
    async with runner.client.ws_connect(f"{runner.base}/comms") as ws:
        await ws.send_json({"subscribe": "debug"})
        await ws.send_json({"subscribe": "status/#"})
        (status,) = await frames(ws, 1, "status/dbg")  # retained: the debug node's grey ring
        assert status["data"] == {"fill": "grey", "shape": "ring"}
        await asyncio.sleep(0.05)
        async with runner.client.post(f"{runner.base}/inject/inj", json={}):
            pass
        items = await frames(ws, 2)
    by_topic = {i["topic"]: i["data"] for i in items}
    debug = by_topic["debug"]
    assert debug["id"] == "dbg"
    assert debug["name"] == "sink"
    assert debug["topic"] == "tp"
    assert (debug["property"], debug["msg"], debug["format"]) == ("payload", "7", "number")
    assert by_topic["status/dbg"] == {"fill": "grey", "shape": "dot", "text": "7"}


async def test_comms_notifications_on_deploy_and_unsubscribe(runner: Runner) -> None:
    async with runner.client.ws_connect(f"{runner.base}/comms") as ws:
        await ws.send_json({"subscribe": "notification/#"})
        await asyncio.sleep(0.05)
        _, body = await runner.deploy(probe_flow("n", inject_debug()))
        items = await frames(ws, 3)
        assert items[-1] == {
            "topic": "notification/runtime-deploy",
            "data": {"revision": body["rev"]},
        }
        assert {
            "topic": "notification/runtime-state",
            "data": {"state": "start", "deploy": True},
        } in items
        await ws.send_json({"unsubscribe": "notification/#"})
        await ws.send_json({"subscribe": "debug"})
        await asyncio.sleep(0.05)
        await runner.deploy(probe_flow("n2", inject_debug()))
        async with runner.client.post(f"{runner.base}/inject/inj", json={}):
            pass
        items = await frames(ws, 1)
        assert [i["topic"] for i in items] == ["debug"]


async def test_comms_heartbeat_after_idle(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comms, "HEARTBEAT_S", 0.2)
    async with runner.client.ws_connect(f"{runner.base}/comms") as ws:
        t0 = time.time() * 1000
        (hb,) = await frames(ws, 1, within=2)
    assert hb["topic"] == "hb"
    assert hb["data"] >= t0


async def test_comms_slow_client_gets_an_explicit_drop_marker(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(comms, "MAX_PENDING", 5)
    async with runner.client.ws_connect(f"{runner.base}/comms") as ws:
        await ws.send_json({"subscribe": "debug"})
        await asyncio.sleep(0.05)
        for i in range(20):  # one loop turn: the writer has no chance to send in between
            runner.server.hub.publish("debug", {"id": "x", "msg": str(i)})
        items = await frames(ws, 6)
    assert items[0]["data"]["level"] == 30
    assert "15 message(s) dropped" in items[0]["data"]["msg"]
    assert [i["data"]["msg"] for i in items[1:]] == ["15", "16", "17", "18", "19"]


async def test_comms_oversized_client_frame_closes_1009(runner: Runner) -> None:
    async with runner.client.ws_connect(f"{runner.base}/comms") as ws:
        await ws.send_str(json.dumps({"subscribe": "x" * (comms.MAX_INCOMING + 10)}))
        frame = await ws.receive(timeout=3)
        assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1009


def test_topic_wildcards() -> None:
    assert topic_matches("status/#", "status/abc")
    assert topic_matches("#", "debug")
    assert topic_matches("notification/+", "notification/runtime-state")
    assert not topic_matches("notification/+", "notification/a/b")
    assert not topic_matches("status/#", "debug")
    assert topic_matches("debug", "debug")
    assert not topic_matches("debug/+", "debug")


# ---------------------------------------------------------------------------- storage


def test_storage_round_trip_and_broken_file_kept_aside(tmp_path: Path) -> None:
    storage = FlowStorage(tmp_path)
    assert storage.load() == []
    rev = storage.save([{"id": "t", "type": "tab"}])
    again = FlowStorage(tmp_path)
    assert again.load() == [{"id": "t", "type": "tab"}]
    assert again.rev == rev
    (tmp_path / "flows.json").write_text("{ torn")
    (tmp_path / ".flows.json.1.dead.tmp").write_text("leftover")
    broken = FlowStorage(tmp_path)
    with pytest.raises(Exception, match="not valid JSON"):
        broken.load()
    kept = list(tmp_path.glob("flows.json.broken-*"))
    assert len(kept) == 1
    assert kept[0].read_text() == "{ torn"
    assert not list(tmp_path.glob(".flows.json.*.tmp"))


# ---------------------------------------------------------------------------- the CLI process


def start_cli(
    userdir: Path, port: int, *options: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "edge_runner",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--userdir",
        str(userdir),
        *options,
    ]
    env = {**os.environ, "EDGE_RUNNER_CREDENTIAL_SECRET": "cli-secret", **(env or {})}
    userdir.parent.mkdir(parents=True, exist_ok=True)
    with open(userdir.parent / "runner.log", "ab") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


async def wait_ready(
    client: aiohttp.ClientSession,
    port: int,
    proc: subprocess.Popen[bytes],
    within: float = 20,
    headers: dict[str, str] | None = None,
) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < within:
        assert proc.poll() is None, f"runner exited with {proc.returncode}"
        try:
            async with client.get(f"http://127.0.0.1:{port}/flows", headers=headers) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.01)
    raise AssertionError("runner did not become ready")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
async def test_cli_serves_persists_across_restart_and_stops_on_sigterm(tmp_path: Path) -> None:
    userdir = tmp_path / "ud"
    port = free_port()
    async with aiohttp.ClientSession() as client:
        proc = start_cli(userdir, port)
        try:
            startup = await wait_ready(client, port, proc)
            async with client.post(
                f"http://127.0.0.1:{port}/flows", json={"flows": probe_flow("p")}, headers=V2
            ) as r:
                assert r.status == 200
            t0 = time.perf_counter()
            os.killpg(proc.pid, signal.SIGTERM)
            rc = await asyncio.to_thread(proc.wait, 10)
            stop_s = time.perf_counter() - t0
            assert rc == 0
            assert stop_s < 5
            proc = start_cli(userdir, port)
            await wait_ready(client, port, proc)
            async with client.get(f"http://127.0.0.1:{port}/probe/p") as r:
                assert r.status == 200
            print(f"startup {startup * 1000:.0f} ms (incl. polling), SIGTERM stop {stop_s:.2f} s")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_cli_rejects_a_bad_port() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edge_runner", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "--port must be 1-65535" in out.stderr


async def test_stored_flows_are_started_and_rejected_ones_kept_but_not_run(tmp_path: Path) -> None:
    userdir = tmp_path / "ud"
    FlowStorage(userdir).save(probe_flow("stored"))
    server = Server("127.0.0.1", 0, RunnerPaths(userdir), credential_secret="s")
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/probe/stored"
        async with aiohttp.ClientSession() as client, client.get(url) as r:
            assert r.status == 200
    finally:
        await server.stop()
    bad = [*probe_flow("bad"), {"id": "u", "type": "no-such-type", "z": "t1", "x": 1, "y": 1}]
    FlowStorage(userdir).save(bad)
    stored = (userdir / "flows.json").read_bytes()
    server = Server("127.0.0.1", 0, RunnerPaths(userdir), credential_secret="s")
    await server.start()
    try:
        async with aiohttp.ClientSession() as client:
            base = f"http://127.0.0.1:{server.port}"
            async with client.get(f"{base}/probe/bad") as r:
                assert r.status == 404
            async with client.get(f"{base}/flows") as r:
                assert await r.json() == bad
    finally:
        await server.stop()
    assert (userdir / "flows.json").read_bytes() == stored
