"""A device's life end to end: the real platform (uvicorn in a thread, on the test database) and
real agent processes (``edge-runner register`` / ``edge-runner run`` with their engine child).

Each test asserts what a user sees: the platform's API and rows, and the runner's status.json.
Figures (apply, rollback, reconnect times; live latency) are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import pytest
from rest_framework.test import APIClient

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.core import realtime
from apps.devices.models import Device, DeviceStateChange, DeviceStatus, DeviceTarget
from apps.snapshots.models import Snapshot
from apps.snapshots.services import snapshot_create
from config.asgi import application as asgi_application
from edge_runner.runtime.paths import RunnerPaths
from tests.apps.devices.test_live import cookie_of, watch
from tests.asgi_server import free_port, serve_asgi
from tests.conftest import Acme

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# DEVICE_HEARTBEAT_SECONDS: the agent accepts 1-3600 s, so 1 s is the shortest healing time.
HEARTBEAT = 1.0
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def line(label: str, *, every: float = 0.2) -> list[dict[str, Any]]:
    """A tab whose inject feeds a debug node every ``every`` seconds."""
    tab = label.lower().replace(" ", "-")
    return [
        {"id": tab, "type": "tab", "label": label},
        {"id": f"{tab}-inject", "type": "inject", "z": tab, "repeat": str(every), "once": True,
         "props": [{"p": "payload"}], "payload": f"hello from {label}", "payloadType": "str",
         "wires": [[f"{tab}-debug"]]},
        {"id": f"{tab}-debug", "type": "debug", "z": tab, "active": True, "tosidebar": True,
         "complete": "payload", "targetType": "msg", "wires": []},
    ]  # fmt: skip


QUICK_HEALTH = {"timeout_seconds": 3, "window_seconds": 0.5}
# A snapshot whose health probe can never pass: the engine answers no /nowhere.
FAILING_HEALTH = {**QUICK_HEALTH, "probe": {"path": "/nowhere", "status": 200}}


def until(check: Callable[[], T | None], within: float, what: str) -> T:
    """Poll ``check`` until it answers something truthy; fail naming ``what``."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(0.05)


class Platform:
    """The real ASGI app on a fixed loopback port, which can go down and come back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._stack: ExitStack | None = None

    def start(self) -> None:
        stack = ExitStack()
        stack.enter_context(serve_asgi(asgi_application, port=self.port))
        self._stack = stack

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


class Agent:
    """One managed edge runner: a data directory and, while running, the agent's process (its
    engine child runs in a session of its own)."""

    def __init__(self, root: Path) -> None:
        self.paths = RunnerPaths(root)
        self.port, self.status_port = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root.parent / f"{root.name}.log"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "edge_runner", *args]

    def register(self, base: str, token: str, name: str) -> str:
        done = subprocess.run(
            self.command("register", "--url", base, "--token", token,
                         "--data-dir", str(self.paths.root), "--name", name),
            capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command("run", "--data-dir", str(self.paths.root), "--port", str(self.port),
                             "--status-port", str(self.status_port), "--memory-limit", "1G"),
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip

    def status(self) -> dict[str, Any] | None:
        """The status page's document, or None while it does not answer."""
        url = f"http://127.0.0.1:{self.status_port}/status.json"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # loopback
                return dict(json.load(answer))
        except OSError:
            return None

    def children(self) -> list[int]:
        assert self.process is not None
        found: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            found += [int(pid) for pid in (task / "children").read_text().split()]
        return found

    def engine(self, path: str) -> Any:
        """The engine's Admin API, with the device credential (its bearer token in managed
        mode)."""
        credential = self.paths.device_credential.read_text().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            headers={"Authorization": f"Bearer {credential}"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310  # loopback
            return json.load(answer)

    def kill(self) -> None:
        """kill -9 of the agent; its engine child (own session) must die with it."""
        assert self.process is not None
        engines = self.children()
        assert engines, "the agent runs its engine as a child"
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None
        until(
            lambda: not any(alive(pid) for pid in engines),
            10,
            f"the engine {engines} dies with its agent",
        )

    def stop(self) -> None:
        if self.process is None:
            return
        engines = self.children() if self.process.poll() is None else []
        if self.process.poll() is None:
            self.process.terminate()
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
            self.process.kill()
        self.process.wait(timeout=10)
        self.process = None
        for pid in engines:  # whatever became of the agent, no engine outlives the test
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def alive(pid: int) -> bool:
    """Is ``pid`` a live process (a zombie is not)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def api(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def make_snapshot(
    world: Acme, name: str, flows: list[dict[str, Any]], health: dict[str, Any] | None = None
) -> Snapshot:
    return snapshot_create(
        principal=Principal.for_user(world.eddie),
        application=world.line_1,
        name=name,
        flows=flows,
        runner_settings={"health": health or QUICK_HEALTH},
    )


def device_row(device_id: int) -> Device:
    return Device.objects.get(pk=device_id)


def device_where(device_id: int, **fields: Any) -> Device | None:
    """The device's row once its ``fields`` have these values, else None."""
    device = device_row(device_id)
    return device if all(getattr(device, k) == v for k, v in fields.items()) else None


def online(device_id: int) -> Device | None:
    return device_where(device_id, status=DeviceStatus.ONLINE)


def provision(world: Acme, platform: Platform, agent: Agent, name: str) -> int:
    """A provisioning token from the API, ``register`` with it, ``run``: answers the device id
    once the platform shows it online."""
    answer = api(world.olivia).post(
        "/api/v1/teams/acme/provisioning-tokens/",
        {"name": f"for {name}", "application": world.line_1.slug, "max_uses": 1},
        format="json",
    )
    assert answer.status_code == 201, answer.json()
    token = answer.json()["token"]
    out = agent.register(platform.base, token, name)
    assert f"({name})" in out
    device = Device.objects.get(name=name)
    assert device.application_id == world.line_1.pk
    assert device.status == DeviceStatus.OFFLINE  # registered, never connected
    agent.start()
    until(lambda: online(device.pk), 60, f"{name} online\n{agent.output()}")
    return device.pk


def deploy(world: Acme, device_id: int, snapshot: Snapshot) -> DeviceTarget:
    answer = api(world.eddie).post(
        f"/api/v1/teams/acme/devices/{device_id}/target/", {"snapshot": snapshot.pk}, format="json"
    )
    assert answer.status_code == 201, answer.json()
    return DeviceTarget.objects.get(device_id=device_id, snapshot=snapshot, outcome="pending")


def settled(target: DeviceTarget) -> DeviceTarget | None:
    target.refresh_from_db()
    return None if target.outcome == "pending" else target


def running(agent: Agent, generation: int) -> dict[str, Any] | None:
    status = agent.status()
    if status and (status.get("active") or {}).get("generation") == generation:
        return status
    return None


def tab_labels(status: dict[str, Any]) -> list[str]:
    return [str(tab.get("label")) for tab in status["flows"]]


def test_a_provisioned_device_comes_online_and_applies_a_deployed_snapshot(
    acme_world: Acme, platform: Platform, agents: Callable[[], Agent]
) -> None:
    agent = agents()
    device_id = provision(acme_world, platform, agent, "press-1")
    v1 = make_snapshot(acme_world, "v1", line("Press line"))

    started = time.monotonic()
    target = deploy(acme_world, device_id, v1)
    applied = until(lambda: settled(target), 60, f"an apply_result\n{agent.output()}")
    apply_seconds = time.monotonic() - started
    print(f"\napply: deploy -> apply_result applied in {apply_seconds:.2f} s")

    assert applied.outcome == "applied", (applied.outcome, applied.reason)
    until(
        lambda: device_where(device_id, active_target_id=target.pk, status=DeviceStatus.ONLINE),
        10,
        "the device online with its active target (updating while it applied)",
    )
    assert DeviceStateChange.objects.filter(
        device_id=device_id, active_target=target, snapshot=v1
    ).exists()
    history = api(acme_world.vera).get(f"/api/v1/teams/acme/devices/{device_id}/history/")
    assert history.status_code == 200, history.json()
    assert history.json()["history"][0]["snapshot"] == v1.pk
    status = until(lambda: running(agent, target.generation), 10, "status.json shows v1")
    assert status["link"] == "connected"
    assert tab_labels(status) == ["Press line"]


def test_live_debug_reaches_a_watching_member_numbered(
    acme_world: Acme, platform: Platform, agents: Callable[[], Agent]
) -> None:
    agent = agents()
    device_id = provision(acme_world, platform, agent, "press-1")
    target = deploy(acme_world, device_id, make_snapshot(acme_world, "v1", line("Live line")))
    assert until(lambda: settled(target), 60, "applied").outcome == "applied"
    cookie = cookie_of(acme_world.vera)
    device = device_row(device_id)
    base = platform.base.replace("http://", "ws://")

    async def scenario() -> tuple[list[dict[str, Any]], list[float]]:
        socket = await watch(base, device, cookie)
        debug: list[dict[str, Any]] = []
        latencies: list[float] = []
        deadline = time.monotonic() + 60
        try:
            while len(debug) < 20 and time.monotonic() < deadline:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 30))
                if frame.get("kind") != "stream":
                    continue
                now = time.time()
                for item in frame["items"]:
                    if item["kind"] == "debug":
                        debug.append(item)
                        latencies.append(now - float(item["time"]))
        finally:
            await socket.close()
        return debug, latencies

    debug, latencies = asyncio.run(scenario())
    print(
        f"\nlive: {len(debug)} debug items; runner->browser latency "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    assert len(debug) >= 20
    assert all(item.get("msg") == "hello from Live line" for item in debug), debug[:3]
    seqs = [int(item["seq"]) for item in debug]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


def test_a_snapshot_failing_its_health_check_is_rolled_back_to_the_last_good(
    acme_world: Acme, platform: Platform, agents: Callable[[], Agent]
) -> None:
    agent = agents()
    device_id = provision(acme_world, platform, agent, "press-1")
    good = deploy(acme_world, device_id, make_snapshot(acme_world, "good", line("Good line")))
    assert until(lambda: settled(good), 60, "good applied").outcome == "applied"
    until(lambda: running(agent, good.generation), 10, "good running")

    bad_snapshot = make_snapshot(acme_world, "bad", line("Bad line"), FAILING_HEALTH)
    started = time.monotonic()
    bad = deploy(acme_world, device_id, bad_snapshot)
    result = until(lambda: settled(bad), 60, f"bad settled\n{agent.output()}")
    print(f"\nrollback: deploy of a failing snapshot -> rolled_back in "
          f"{time.monotonic() - started:.2f} s")  # fmt: skip

    assert result.outcome == "rolled_back", (result.outcome, result.reason)
    assert "/nowhere" in result.reason
    device = device_row(device_id)
    assert device.active_target_id == good.pk
    assert device.target_id == bad.pk  # not resent: the platform keeps the outcome
    status = until(lambda: running(agent, good.generation), 10, "good running again")
    assert tab_labels(status) == ["Good line"]
    assert status["last_good"]["generation"] == good.generation
    assert status["handled"]["generation"] == bad.generation
    assert agent.engine("/flows/state")["state"] == "start"
    deployed = agent.engine("/flows")
    assert [n["label"] for n in deployed if n.get("type") == "tab"] == ["Good line"]
    # A few heartbeats later nothing changed: the failed target is not retried.
    time.sleep(HEARTBEAT * 4)
    assert settled(bad) is not None
    assert bad.outcome == "rolled_back"
    assert running(agent, good.generation)


def test_offline_the_device_keeps_and_restarts_its_flows_then_reconnects(
    acme_world: Acme, platform: Platform, agents: Callable[[], Agent]
) -> None:
    agent = agents()
    device_id = provision(acme_world, platform, agent, "press-1")
    v1 = deploy(acme_world, device_id, make_snapshot(acme_world, "v1", line("Kept line")))
    assert until(lambda: settled(v1), 60, "v1 applied").outcome == "applied"
    until(lambda: running(agent, v1.generation), 10, "v1 running")

    platform.stop()
    status = until(
        lambda: (s := agent.status()) and s["link"] != "connected" and s, 30, "the link noticed"
    )
    assert status["active"]["generation"] == v1.generation
    assert status["engine"]["state"] == "start", status["engine"]

    agent.kill()
    assert agent.status() is None
    agent.start()  # the platform is still down
    status = until(lambda: running(agent, v1.generation), 60, f"v1 after restart\n{agent.output()}")
    assert tab_labels(status) == ["Kept line"]
    assert status["link"] != "connected"
    until(
        lambda: (s := agent.status()) and s["engine"]["state"] == "start",
        30,
        "the engine runs the last good snapshot offline",
    )
    until(lambda: device_row(device_id).status == DeviceStatus.OFFLINE, 10, "offline")

    started = time.monotonic()
    platform.start()
    until(lambda: online(device_id), 90, f"back online\n{agent.output()}")
    print(f"\nreconnect: platform back -> device online in {time.monotonic() - started:.2f} s")
    assert device_row(device_id).active_target_id == v1.pk
    assert (agent.status() or {}).get("link") == "connected"


def test_suspend_resume_then_decommission_wipes_the_device(
    acme_world: Acme, platform: Platform, agents: Callable[[], Agent]
) -> None:
    agent = agents()
    device_id = provision(acme_world, platform, agent, "press-1")
    olivia = api(acme_world.olivia)
    devices = f"/api/v1/teams/acme/devices/{device_id}"

    assert olivia.post(f"{devices}/suspend/").status_code == 200
    until(
        lambda: device_where(device_id, state="suspended"),
        10,
        "the agent reports suspended",
    )
    assert device_row(device_id).status == DeviceStatus.SUSPENDED
    assert olivia.get(f"{devices}/").json()["status"] == "suspended"

    assert olivia.post(f"{devices}/resume/").status_code == 200
    until(
        lambda: device_where(device_id, state="running"),
        10,
        "the agent reports running",
    )
    assert device_row(device_id).status == DeviceStatus.ONLINE

    assert olivia.post(f"{devices}/decommission/").status_code == 200
    assert agent.process is not None
    code = agent.process.wait(timeout=30)
    assert code == 0, agent.output()
    assert device_row(device_id).status == DeviceStatus.DECOMMISSIONED
    closes = AuditEvent.objects.filter(event="device.link.closed", target_id=str(device_id))
    assert [row.after["code"] for row in closes if row.after] == [4410]
    assert not agent.paths.identity.exists()
    assert not agent.paths.device_credential.exists()
    assert not (agent.paths.root / "device").exists()


def test_a_target_push_the_channel_layer_loses_converges_at_the_next_heartbeat(
    acme_world: Acme, platform: Platform, agents: Callable[[], Agent]
) -> None:
    """The channel layer losing the push (Redis restarting, a full channel) loses only the fast
    path: the heartbeat's generation check delivers the target anyway. The loss is injected
    where the platform hands the push to the layer (the platform runs in this process)."""
    agent = agents()
    device_id = provision(acme_world, platform, agent, "press-1")
    v1 = deploy(acme_world, device_id, make_snapshot(acme_world, "v1", line("First line")))
    assert until(lambda: settled(v1), 60, "v1 applied").outcome == "applied"

    assert device_row(device_id).link_channel, "the live link claimed the device"
    with mock.patch.object(realtime._SENDER, "submit_channel") as lost:
        started = time.monotonic()
        v2 = deploy(acme_world, device_id, make_snapshot(acme_world, "v2", line("Second line")))
    assert [call.args[1]["command"] for call in lost.call_args_list] == ["push_target"]
    result = until(lambda: settled(v2), 30, f"v2 settled\n{agent.output()}")
    print(f"\nheal: a target whose push was lost applied in {time.monotonic() - started:.2f} s "
          f"(heartbeat {HEARTBEAT} s)")  # fmt: skip
    assert result.outcome == "applied", (result.outcome, result.reason)
    status = until(lambda: running(agent, v2.generation), 10, "v2 running")
    assert tab_labels(status) == ["Second line"]
