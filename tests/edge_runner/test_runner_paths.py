"""The runner's one data-directory layout (``RunnerPaths``): resolved once, no fallbacks, and
complete listings of what it writes and of what holds secrets (for the decommission wipe)."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_runner.__main__ import build_parser
from edge_runner.runtime.engine import Engine
from edge_runner.runtime.paths import NoRunnerPathsError, RunnerPaths
from edge_runner.runtime.server import Server
from edge_runner.testing import FlowHarness

FILE_NODE = {
    "id": "w",
    "type": "file",
    "filename": "out.txt",
    "filenameType": "str",
    "appendNewline": False,
    "createDir": False,
    "overwriteFile": "true",
    "encoding": "none",
    "wires": [["out"]],
}
CAPTURE = {"id": "out", "type": "helper"}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_the_layout_is_one_absolute_root_resolved_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    paths = RunnerPaths.at("~/runner/../runner")
    assert paths.root == tmp_path / "runner"
    assert paths.flows == tmp_path / "runner" / "flows.json"
    assert paths.opcua_pki == paths.certificates / "opcua"
    assert paths.mqtt_queue.parent == paths.outbox
    assert all(entry.parent == paths.root for entry in paths.entries())
    assert set(paths.secrets()) <= set(paths.entries())
    with pytest.raises(ValueError, match="must be absolute"):
        RunnerPaths(Path("relative/dir"))


def test_the_cli_takes_data_dir_or_userdir_as_one_option() -> None:
    parse = build_parser().parse_args
    assert parse(["serve", "--data-dir", "/srv/a"]).data_dir == "/srv/a"
    assert parse(["serve", "--userdir", "/srv/b"]).data_dir == "/srv/b"
    assert parse(["serve"]).data_dir == "~/.edge-runner"


async def test_an_engine_without_paths_writes_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old fallbacks (working directory, $MANIFOLD_RUNNER_DATA_DIR, home) stay empty: the
    node that needs a directory fails to start and says why."""
    places = {name: tmp_path / name for name in ("cwd", "env", "home")}
    for place in places.values():
        place.mkdir()
    monkeypatch.chdir(places["cwd"])
    monkeypatch.setenv("MANIFOLD_RUNNER_DATA_DIR", str(places["env"]))
    monkeypatch.setenv("HOME", str(places["home"]))
    engine = Engine()
    with pytest.raises(NoRunnerPathsError, match="no data directory"):
        _ = engine.data_dir
    async with FlowHarness([FILE_NODE, CAPTURE], engine=engine) as h:
        (status,) = h.statuses("w")
        assert status["fill"] == "red"
        assert "no data directory" in h.logs()[0]["msg"]
        h.receive("w", {"payload": "nowhere"})
        await h.quiet(0.05)
    assert {name: list(p.iterdir()) for name, p in places.items()} == {
        "cwd": [],
        "env": [],
        "home": [],
    }


async def test_the_harness_gives_an_explicit_temporary_layout_removed_at_exit() -> None:
    async with FlowHarness([FILE_NODE, CAPTURE]) as h:
        root = h.paths.root
        h.receive("w", {"payload": "kept"})
        await h.wait("out")
        assert (h.paths.node_data / "out.txt").read_text() == "kept"
    assert not root.exists()


async def test_given_paths_are_kept_and_the_data_dir_is_made_on_demand(tmp_path: Path) -> None:
    paths = RunnerPaths(tmp_path)
    engine = Engine(paths=paths)
    assert not paths.node_data.exists()
    async with FlowHarness([FILE_NODE, CAPTURE], engine=engine) as h:
        h.receive("w", {"payload": "kept"})
        await h.wait("out")
    assert (tmp_path / "data" / "out.txt").read_text() == "kept"


async def test_every_file_written_is_listed_and_every_secret_is_in_secrets(
    tmp_path: Path,
) -> None:
    """A runner with credentials, an OPC-UA endpoint with its own certificate, a file node, a
    file context store, an MQTT queue and a historian: every file it leaves is covered by
    ``entries()``, and every file holding secret material by ``secrets()``."""
    paths = RunnerPaths(tmp_path / "runner")
    password = f"pw-{uuid.uuid4().hex}"
    port = closed_port()
    flows: list[dict[str, Any]] = [
        {"id": "t1", "type": "tab"},
        {
            "id": "inj",
            "type": "inject",
            "z": "t1",
            "payload": '{"tag": "t", "value": 1.5, "timestamp": 1700000000000}',
            "payloadType": "json",
            "wires": [["w", "ctx", "mq", "hw"]],
        },
        {**FILE_NODE, "z": "t1", "wires": []},
        {
            "id": "ctx",
            "type": "change",
            "z": "t1",
            "rules": [{"t": "set", "p": "#:(file)::last", "pt": "global", "to": "payload"}],
            "wires": [],
        },
        {
            "id": "bk",
            "type": "mqtt-broker",
            "broker": "127.0.0.1",
            "port": str(port),
            "protocolVersion": "4",
            "reconnectPeriod": "100",
            "credentials": {"user": "edge", "password": password},
        },
        {"id": "mq", "type": "mqtt out", "z": "t1", "topic": "t/q", "broker": "bk", "wires": []},
        {"id": "hw", "type": "historian-write", "z": "t1", "flushInterval": 0.05, "wires": []},
        {
            "id": "ep",
            "type": "opcua-endpoint",
            "endpoint": f"opc.tcp://127.0.0.1:{port}",
            "securityPolicy": "Basic256Sha256",
            "securityMode": "Sign",
        },
        {"id": "rd", "type": "opcua-read", "z": "t1", "endpoint": "ep", "wires": []},
    ]
    server = Server("127.0.0.1", 0, paths)
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as client:
            async with client.post(f"{base}/flows", json=flows) as response:
                assert response.status == 204, await response.text()
            async with client.post(f"{base}/inject/inj", json={}) as response:
                assert response.status == 200
        expected = [
            paths.node_data / "out.txt",
            paths.mqtt_queue / "mq.sqlite3",
            paths.opcua_pki / "client-key.pem",
            paths.historian / "historian.sqlite3",
        ]
        for _ in range(300):
            if all(p.exists() for p in expected):
                break
            await asyncio.sleep(0.05)
    finally:
        await server.stop()
    written = files_under(paths.root)
    assert set(expected) | {paths.flows, paths.credentials, paths.runtime_config} <= set(written)
    assert (paths.context / "global.json").is_file()
    assert [f for f in written if not paths.owns(f)] == []
    secret_text = paths.runtime_config.read_text()
    markers = (password.encode(), secret_text.encode(), b"PRIVATE KEY")
    holding = [f for f in written if any(m in f.read_bytes() for m in markers)]
    assert paths.runtime_config in holding
    assert paths.opcua_pki / "client-key.pem" in holding
    assert [f for f in holding if not paths.holds_secret(f)] == []
    assert paths.holds_secret(paths.credentials)
    assert not any(password.encode() in f.read_bytes() for f in written)  # encrypted at rest
    assert stat.S_IMODE(os.stat(paths.certificates).st_mode) == 0o700


async def test_the_server_moves_an_earlier_layouts_queue_and_certificate_into_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Undelivered MQTT messages and the OPC-UA certificate servers trust survive the move to
    RunnerPaths; a second start has nothing to move."""
    paths = RunnerPaths(tmp_path)
    (tmp_path / "mqtt-queue").mkdir()
    (tmp_path / "mqtt-queue" / "out.sqlite3").write_bytes(b"queued")
    (tmp_path / "data" / "opcua" / "pki").mkdir(parents=True)
    (tmp_path / "data" / "opcua" / "pki" / "client-key.pem").write_bytes(b"key")
    for _ in range(2):
        server = Server("127.0.0.1", 0, paths, credential_secret="s")
        await server.start()
        await server.stop()
    assert (paths.mqtt_queue / "out.sqlite3").read_bytes() == b"queued"
    assert (paths.opcua_pki / "client-key.pem").read_bytes() == b"key"
    assert not (tmp_path / "mqtt-queue").exists()
    assert not (tmp_path / "data" / "opcua" / "pki").exists()
    assert stat.S_IMODE(os.stat(paths.certificates).st_mode) == 0o700
    moved = [r.getMessage() for r in caplog.records if r.getMessage().startswith("moved ")]
    assert len(moved) == 2
