"""Fleet benchmark: N simulated runners on the real device protocol against the platform in
production mode (PostgreSQL, Redis, several ASGI processes).

    python bench/fleet.py --devices 1000 --asgi 2 --sim-procs 2 --seconds 30

Setup (not measured): a fresh PostgreSQL database, migrations, a team with one application, a
snapshot of examples/motor-anomaly.json (its model uploaded) and a provisioning token; the
devices register through ``POST /api/v1/devices/register/`` (above ``--http-register-limit``
devices they are created in bulk by the same service code, to keep setup short) and the
application's snapshot becomes every device's target.

Measured: all devices connect to ``/ws/devices/link/`` at once (spread over the ASGI processes)
and send ``hello``; *connect -> target* is the time from opening the socket to holding a signed
target (in ``welcome`` or a ``target`` frame; family 25). Then every device sends a heartbeat
every ``--heartbeat`` seconds for ``--seconds`` seconds, each announcing a stale target
generation, so the platform must read the device, reconcile and answer with the target: the
*heartbeat* figure is that round trip (a heartbeat the platform answers within the interval
holds). RSS per device is the ASGI processes' growth divided by the connected devices.

``--flood`` (RELIABILITY family 13): one more device floods its link with frames as fast as
one process can send, for the second half of the heartbeat phase, reconnecting at once after
every close; the ``flood:`` line compares the other devices' heartbeat p99 before and during.

The last line is machine-readable::

    devices=N connected=C errors=E p99_connect_to_target_ms=X heartbeat_p99_ms=Y
    rss_per_device_kib=Z   (one line)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from config.websocket import WS_OPTION  # noqa: E402
from edge_runner.protocol import link, manifest  # noqa: E402

SETUP = r"""
import json, sys
import django
django.setup()
from django.db import transaction
from apps.accounts.principal import Principal
from apps.accounts.services import user_create
from apps.teams.services import application_create, team_create
from apps.snapshots.services import snapshot_create
from apps.devices.services.provisioning import provisioning_token_create
spec = json.load(sys.stdin)
owner = user_create(email="fleet@bench.example", password="fleet-bench-Passw0rd!")
principal = Principal.for_user(owner)
team = team_create(principal=principal, name="Fleet bench", slug="fleet")
app = application_create(principal=principal, team=team, name="Line 1", slug="line-1")
flows = json.load(open(spec["flows"]))
# The flow's onnx-infer node names its model by hash: the team's store must hold it.
from apps.snapshots.artifacts import model_upload
from examples.make_motor_model import build_model
model_upload(principal=principal, team=team, name="motor-anomaly", chunks=[build_model()])
snapshot = snapshot_create(principal=principal, application=app, name="bench v1", flows=flows)
token, raw = provisioning_token_create(
    principal=principal, team=team, name="bench", application=app)
print(json.dumps({"token": raw, "snapshot": snapshot.pk, "team": team.slug, "app": app.slug,
                  "owner": owner.pk}))
"""

BULK = r"""
import json, sys
import django
django.setup()
from apps.devices.services.provisioning import device_register
from edge_runner.protocol import manifest
spec = json.load(sys.stdin)
out = []
for i in range(spec["count"]):
    _, public = manifest.generate_sealing_key()
    device, credential = device_register(
        token=spec["token"], name=f"sim-{spec['offset'] + i}",
        sealing_key_b64=manifest.public_key_b64(public), agent_version="bench", hostname="sim")
    out.append(credential)
print(json.dumps(out))
"""

TARGET = r"""
import json, sys
import django
django.setup()
from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.devices.services.targets import application_set_target
from apps.snapshots.models import Snapshot
from apps.teams.models import Application
spec = json.load(sys.stdin)
app = Application.objects.get(team__slug=spec["team"], slug=spec["app"])
snapshot = Snapshot.objects.get(pk=spec["snapshot"])
principal = Principal.for_user(User.objects.get(pk=spec["owner"]))
print(len(application_set_target(principal=principal, application=app, snapshot=snapshot).targets))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(args: argparse.Namespace, var_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.prod",
        "MANIFOLD_SECRET_KEY": secrets.token_urlsafe(64),
        "MANIFOLD_KEY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "MANIFOLD_DATABASE_URL": args.database_url,
        "MANIFOLD_REDIS_URL": args.redis_url,
        "MANIFOLD_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "MANIFOLD_SSL_REDIRECT": "0",
        "MANIFOLD_VAR_DIR": str(var_dir),
        "MANIFOLD_STATIC_ROOT": str(var_dir / "static"),
        "MANIFOLD_DATABASE_POOL_SIZE": str(args.pool),
        "PYTHONPATH": str(REPO),
    }


def django_script(code: str, env: dict[str, str], stdin: dict[str, Any]) -> Any:
    done = subprocess.run(  # noqa: S603  # our own script, our interpreter
        [sys.executable, "-c", code],
        input=json.dumps(stdin).encode(),
        env=env,
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"setup step failed:\n{done.stderr.decode()[-3000:]}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def fresh_database(url: str) -> None:
    import psycopg

    params = psycopg.conninfo.conninfo_to_dict(url)
    name = params.pop("dbname")
    admin = psycopg.conninfo.make_conninfo("", **{**params, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes used so far (their own threads included)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


async def register_over_http(base: str, token: str, count: int, offset: int) -> list[str]:
    credentials: list[str] = []
    limit = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as session:

        async def one(index: int) -> None:
            _, public = manifest.generate_sealing_key()
            body = {
                "token": token,
                "name": f"sim-{offset + index}",
                "sealing_key": manifest.public_key_b64(public),
                "agent_version": "bench",
                "hostname": "sim",
            }
            async with limit, session.post(base + link.REGISTER_PATH, json=body) as response:
                doc = await response.json()
                if response.status != 201:
                    raise SystemExit(f"registration failed: {response.status} {doc}")
                credentials.append(doc["credential"])

        await asyncio.gather(*(one(i) for i in range(count)))
    return credentials


# ---------------------------------------------------------------------- simulated devices
async def simulate(
    credentials: list[str],
    bases: list[str],
    heartbeat: float,
    seconds: float,
    start_at: float,
    phase: Any = None,
) -> dict[str, Any]:
    connect_ms: list[float] = []
    heartbeat_ms: list[tuple[float, float]] = []  # (wall time sent, round trip ms)
    errors: list[str] = []
    connected = 0
    ready = asyncio.Event()  # every device connected (or failed): heartbeats may start
    settled = asyncio.Event()

    def settle() -> None:
        if len(connect_ms) + len(errors) >= len(credentials):
            settled.set()

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def device(index: int, credential: str) -> None:
            nonlocal connected
            url = bases[index % len(bases)].replace("http", "ws", 1) + link.LINK_PATH
            await asyncio.sleep(max(0.0, start_at - time.time()))
            started = time.perf_counter()
            try:
                async with session.ws_connect(
                    url,
                    headers={"Authorization": f"Bearer {credential}"},
                    max_msg_size=link.MAX_FRAME_BYTES,
                    heartbeat=None,
                ) as ws:
                    connected += 1
                    hello = {
                        "type": link.HELLO,
                        "protocol": link.PROTOCOL_VERSION,
                        "agent_version": "bench",
                        "state": "running",
                        "active": None,
                        "target": None,
                    }
                    await ws.send_str(link.encode(hello))
                    got_target = False
                    while not got_target:
                        message = link.decode(
                            await ws.receive_str(timeout=60), allowed=link.PLATFORM_TYPES
                        )
                        target = message.get("target")
                        got_target = message["type"] in (link.WELCOME, link.TARGET) and bool(target)
                    connect_ms.append((time.perf_counter() - started) * 1000)
                    settle()
                    await ready.wait()
                    # spread the fleet's heartbeats over the interval
                    await asyncio.sleep(heartbeat * (index % 97) / 97)
                    deadline = time.monotonic() + seconds
                    while time.monotonic() < deadline:
                        sent = time.perf_counter()
                        beat: dict[str, Any] = {
                            "type": link.HEARTBEAT,
                            "state": "running",
                            "active": None,
                            "target": {"generation": 0, "outcome": "pending"},
                            "resources": {"cpu_percent": 1.0, "memory_bytes": 50_000_000},
                            "nodes": {"total": 12, "error": 0},
                            "errors": [],
                        }
                        await ws.send_str(link.encode(beat))
                        while True:
                            reply = link.decode(
                                await ws.receive_str(timeout=60), allowed=link.PLATFORM_TYPES
                            )
                            if reply["type"] == link.TARGET:
                                break
                        heartbeat_ms.append(
                            (
                                time.time() - (time.perf_counter() - sent),
                                (time.perf_counter() - sent) * 1000,
                            )
                        )
                        await asyncio.sleep(max(0.0, heartbeat - (time.perf_counter() - sent)))
            except Exception as exc:  # every failure is counted and reported, none stops the run
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                settle()

        tasks = [asyncio.create_task(device(i, c)) for i, c in enumerate(credentials)]
        # heartbeats start once every device had its chance to connect
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(settled.wait(), timeout=max(1.0, start_at - time.time()) + 60)
        ready.set()
        if phase is not None:
            phase.set()  # the heartbeat phase began (the flooder's clock)
        await asyncio.gather(*tasks)
    return {
        "connected": connected,
        "connect_ms": connect_ms,
        "heartbeat_ms": heartbeat_ms,
        "errors": errors,
    }


def simulator_process(
    credentials: list[str],
    bases: list[str],
    heartbeat: float,
    seconds: float,
    start_at: float,
    out: Any,
    phase: Any,
) -> None:
    out.put(asyncio.run(simulate(credentials, bases, heartbeat, seconds, start_at, phase)))


async def flood(credential: str, bases: list[str], phase: Any, seconds: float) -> dict[str, Any]:
    """RELIABILITY family 13: one device floods its link as fast as this process can send,
    for the second half of the heartbeat phase, reconnecting at once whenever the platform
    closes it (an attacker ignores the agent's backoff)."""
    await asyncio.to_thread(phase.wait)  # a multiprocessing event: waited for on a thread
    await asyncio.sleep(seconds / 2)
    began = time.time()
    deadline = time.monotonic() + seconds / 2
    frames = connections = refused = 0
    closes: dict[str, int] = {}
    frame = link.encode({"type": link.STREAM, "epoch": "flood", "items": []})
    hello = link.encode(
        {"type": link.HELLO, "protocol": link.PROTOCOL_VERSION, "agent_version": "flood",
         "state": "running", "active": None, "target": None}
    )  # fmt: skip
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            url = bases[connections % len(bases)].replace("http", "ws", 1) + link.LINK_PATH
            connections += 1
            try:
                async with session.ws_connect(
                    url, headers={"Authorization": f"Bearer {credential}"}, heartbeat=None
                ) as ws:
                    await ws.send_str(hello)
                    while time.monotonic() < deadline and not ws.closed:
                        for _ in range(100):
                            await ws.send_str(frame)
                        frames += 100
                        await asyncio.sleep(0)
                    code = str(ws.close_code)
                    closes[code] = closes.get(code, 0) + 1
            except (aiohttp.ClientError, ConnectionError) as exc:
                if isinstance(exc, aiohttp.WSServerHandshakeError):
                    refused += 1
                else:
                    closes[type(exc).__name__] = closes.get(type(exc).__name__, 0) + 1
    return {"began": began, "took": time.time() - began, "frames": frames,
            "connections": connections, "refused": refused, "closes": closes}  # fmt: skip


def flood_process(credential: str, bases: list[str], phase: Any, seconds: float, out: Any) -> None:
    out.put({"flood": asyncio.run(flood(credential, bases, phase, seconds))})


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--asgi", type=int, default=2, help="ASGI processes")
    parser.add_argument("--sim-procs", type=int, default=2, help="simulator processes")
    parser.add_argument("--heartbeat", type=float, default=15.0, help="seconds between heartbeats")
    parser.add_argument("--seconds", type=float, default=30.0, help="heartbeat phase length")
    parser.add_argument("--pool", type=int, default=10, help="database pool per ASGI process")
    parser.add_argument("--http-register-limit", type=int, default=2000)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/manifold_fleet_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument(
        "--flood",
        action="store_true",
        help="one more device floods its link in the heartbeat phase's second half (family 13)",
    )
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    (var_dir / "static").mkdir()
    env = environment(args, var_dir)
    print(f"setup: database {args.database_url}, var {var_dir}", flush=True)
    fresh_database(args.database_url)
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        env=env,
        cwd=REPO,
        check=True,
    )
    made = django_script(SETUP, env, {"flows": str(REPO / "examples" / "motor-anomaly.json")})

    ports = [free_port() for _ in range(args.asgi)]
    servers = [
        subprocess.Popen(  # noqa: S603  # fixed argv
            [
                sys.executable, "-m", "uvicorn", "config.asgi:application",
                "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
                "--log-level", "warning", "--backlog", "8192", "--ws", WS_OPTION,
                "--ws-max-size", str(link.MAX_FRAME_BYTES),
            ],
            env=env,
            cwd=REPO,
        )
        for port in ports
    ]  # fmt: skip
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base in bases:
            for _ in range(300):
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=1),
                ):
                    break
                time.sleep(0.1)
        started = time.monotonic()
        over_http = min(args.devices, args.http_register_limit)
        credentials = asyncio.run(
            register_over_http(bases[0], made["token"], over_http + int(args.flood), 0)
        )
        flooder = credentials.pop() if args.flood else None
        if args.devices > over_http:
            credentials += django_script(
                BULK, env, {"token": made["token"], "count": args.devices - over_http,
                            "offset": over_http}
            )  # fmt: skip
        targets = django_script(TARGET, env, made)
        print(
            f"setup: {len(credentials)} devices registered ({over_http} over HTTP), "
            f"{targets} targets issued in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        pids = [server.pid for server in servers]
        rss_before = rss_kib(pids)
        start_at = time.time() + 2.0
        fork = multiprocessing.get_context("fork")
        queue: Any = fork.Queue()
        phase: Any = fork.Event()
        shares = [credentials[i :: args.sim_procs] for i in range(args.sim_procs)]
        sims = [
            fork.Process(
                target=simulator_process,
                args=(share, bases, args.heartbeat, args.seconds, start_at, queue, phase),
            )
            for share in shares
        ]
        if flooder is not None:
            sims.append(
                fork.Process(
                    target=flood_process, args=(flooder, bases, phase, args.seconds, queue)
                )
            )
        for sim in sims:
            sim.start()
        rss_peak = rss_before
        cpu_before = cpu_seconds(pids)
        connect_cpu: float | None = None
        results: list[dict[str, Any]] = []
        while len(results) < len(sims):
            with contextlib.suppress(Exception):
                results.append(queue.get(timeout=0.5))
            rss_peak = max(rss_peak, rss_kib(pids))
            if connect_cpu is None and phase.is_set():
                connect_cpu = cpu_seconds(pids) - cpu_before
        beat_cpu = cpu_seconds(pids) - cpu_before - (connect_cpu or 0.0)
        for sim in sims:
            sim.join()
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()  # a graceful shutdown that hangs must not outlive the run
                server.wait()
    flooded = next((r["flood"] for r in results if "flood" in r), None)
    results = [r for r in results if "flood" not in r]
    connected = sum(r["connected"] for r in results)
    connect_ms = [v for r in results for v in r["connect_ms"]]
    samples = [v for r in results for v in r["heartbeat_ms"]]
    heartbeat_ms = [ms for _, ms in samples]
    errors = [e for r in results for e in r["errors"]]
    for error in sorted(set(errors))[:10]:
        print(f"error: {error}")
    if connect_ms:
        print(
            f"connect->target ms: p50 {statistics.median(connect_ms):.0f} "
            f"p99 {p99(connect_ms):.0f} max {max(connect_ms):.0f}"
        )
    if connect_cpu is not None:
        print(
            f"connect phase: the ASGI processes used {connect_cpu:.1f} CPU s, "
            f"{connect_cpu * 1000 / max(1, connected):.2f} ms per device (load-independent)"
        )
    if heartbeat_ms:
        print(
            f"heartbeat phase: the ASGI processes used {beat_cpu:.1f} CPU s, "
            f"{beat_cpu * 1000 / len(heartbeat_ms):.2f} ms per heartbeat (with the connect "
            "phase's tail; load-independent)"
        )
        print(
            f"heartbeat round trip ms: n {len(heartbeat_ms)} p50 "
            f"{statistics.median(heartbeat_ms):.0f} p99 {p99(heartbeat_ms):.0f}"
        )
    if flooded is not None:
        quiet = [ms for at, ms in samples if at < flooded["began"]]
        loud = [ms for at, ms in samples if at >= flooded["began"]]
        rate = flooded["frames"] / max(flooded["took"], 1e-9)
        print(
            f"flood: {flooded['frames']} frames in {flooded['took']:.1f} s ({rate:.0f}/s) over "
            f"{flooded['connections']} connections, closes {flooded['closes']}, refused "
            f"handshakes {flooded['refused']}; neighbours' heartbeat p99 {p99(quiet):.0f} ms "
            f"quiet (n {len(quiet)}) -> {p99(loud):.0f} ms under flood (n {len(loud)}), "
            f"{(p99(loud) / p99(quiet) - 1) * 100:+.0f} %"
        )
    rss_per_device = (rss_peak - rss_before) / max(1, connected)
    print(
        f"devices={args.devices} connected={connected} errors={len(errors)} "
        f"p99_connect_to_target_ms={p99(connect_ms):.0f} heartbeat_p99_ms={p99(heartbeat_ms):.0f} "
        f"rss_per_device_kib={rss_per_device:.0f}"
    )
    return 0 if not errors and connected == args.devices else 1


if __name__ == "__main__":
    sys.exit(main())
