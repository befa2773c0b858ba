"""The agent's link client against a platform double.

``PlatformDouble`` is a small in-test aiohttp server that speaks the device protocol and signs
real manifests with ``edge_runner.protocol.manifest``; it stands in for the platform. The
end-to-end tests of the link with the real platform (Django + Channels) live under
tests/apps/devices. The applier here records what it is asked to apply and reads the parts
the link downloaded; the real applier is tested in test_apply*.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edge_runner.agent.identity import Identity
from edge_runner.agent.link import LinkClient, dev_route_allowed
from edge_runner.agent.stream import StreamBuffer
from edge_runner.protocol import link, manifest
from edge_runner.protocol.manifest import Manifest
from edge_runner.runtime.paths import RunnerPaths
from tests.edge_runner.agent.platform_double import TOKEN, PlatformDouble

FLOWS = b'[{"id":"t1","type":"tab"}]'


class Store:
    """The part of the snapshot store the link uses: agent.json's fields and incoming/."""

    def __init__(self, paths: RunnerPaths) -> None:
        self.paths = paths
        self.state: dict[str, Any] = {"active": None, "handled": None, "min_generation": 0}

    def incoming(self, generation: int) -> Path:
        path = self.paths.snapshots / ".incoming" / str(generation)
        path.mkdir(parents=True, exist_ok=True)
        return path


class Applier:
    """Records each manifest and the downloaded flows; answers ``applied``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.applied: list[tuple[int, bytes]] = []

    async def apply(self, m: Manifest) -> SimpleNamespace:
        flows = (self.store.incoming(m.generation) / manifest.FLOWS_PART).read_bytes()
        part = m.part(manifest.FLOWS_PART)
        assert part is not None
        manifest.check_part(part, flows)
        self.applied.append((m.generation, flows))
        self.store.state["active"] = {
            "snapshot": m.snapshot,
            "generation": m.generation,
            "digest": m.digest,
        }
        self.store.state["handled"] = {"generation": m.generation, "outcome": "applied"}
        self.store.state["min_generation"] = m.generation
        return SimpleNamespace(
            outcome="applied", reason="", active=dict(self.store.state["active"])
        )


class EngineClient:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []

    async def state(self) -> dict[str, Any]:
        return {"state": "start"}

    async def request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        return 200, {"state": "start"}


class Agent:
    """A link client with its recording collaborators, running in the background."""

    def __init__(self, identity: Identity, paths: RunnerPaths, **options: Any) -> None:
        self.store = Store(paths)
        self.applier = Applier(self.store)
        self.engine = EngineClient()
        self.stream = options.pop("stream", None) or StreamBuffer()
        self.client = LinkClient(
            identity,
            self.applier,
            self.engine,
            self.stream,
            paths=paths,
            store=self.store,
            first_window=options.pop("first_window", 0.01),
            **options,
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Agent:
        self.task = asyncio.ensure_future(self.client.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def identity(platform: PlatformDouble, paths: RunnerPaths) -> Identity:
    return await Identity.register(platform.url, TOKEN, paths)


async def test_hello_welcome_and_heartbeat(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    platform.heartbeat_seconds = 1
    errors = [{"time": t, "node": "n1", "message": f"boom {t}"} for t in range(8)]
    facts = {"nodes": {"total": 4, "error": 1}, "errors": errors}
    async with Agent(identity, paths, engine_facts=lambda: facts) as agent:
        hello = await platform.wait_for(link.HELLO)
        assert hello["protocol"] == link.PROTOCOL_VERSION
        assert hello["active"] is None
        assert hello["target"] is None
        beat = await platform.wait_for(link.HEARTBEAT)
        assert beat["state"] == "running"
        assert beat["nodes"] == {"total": 4, "error": 1}
        assert beat["errors"] == errors[-5:]
        resources = beat["resources"]
        assert resources["memory_bytes"] > 0
        assert resources["disk_free_bytes"] > 0
        assert resources["uptime_seconds"] >= 0
        assert agent.client.heartbeat_seconds == 1


async def test_a_sub_second_heartbeat_is_kept_and_nonsense_is_clamped(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    platform.heartbeat_seconds = 0.3
    async with Agent(identity, paths) as agent:
        await platform.wait_for(link.HEARTBEAT)
        started = time.monotonic()
        await platform.count(link.HEARTBEAT, 4, within=5)  # not one every 15 s
        assert agent.client.heartbeat_seconds == 0.3
        assert time.monotonic() - started < 3
    assert [link.heartbeat_interval(v) for v in (0, -5, 0.05, 1e9, True, "15", float("nan"))] == [
        link.MIN_HEARTBEAT_SECONDS,
        link.MIN_HEARTBEAT_SECONDS,
        link.MIN_HEARTBEAT_SECONDS,
        link.MAX_HEARTBEAT_SECONDS,
        link.DEFAULT_HEARTBEAT_SECONDS,
        link.DEFAULT_HEARTBEAT_SECONDS,
        link.DEFAULT_HEARTBEAT_SECONDS,
    ]


async def test_a_target_is_verified_downloaded_applied_and_reported(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    async with Agent(identity, paths) as agent:
        await platform.connected()
        target = platform.sign_target(5, {"flows.json": FLOWS, "settings.json": b"{}"})
        # offered twice (the fast path and a heartbeat's comparison): applied once
        await platform.send({"type": link.TARGET, "target": target})
        await platform.send({"type": link.TARGET, "target": target})
        result = await platform.wait_for(link.APPLY_RESULT)
        assert result["outcome"] == "applied"
        assert result["generation"] == 5
        assert result["snapshot"] == "41"
        assert result["active"]["generation"] == 5
        assert agent.applier.applied == [(5, FLOWS)]
        # the same generation again is ignored, whatever came of it
        count = len(platform.received)
        await platform.send({"type": link.TARGET, "target": target})
        await asyncio.sleep(0.3)
        assert agent.applier.applied == [(5, FLOWS)]
        assert not [m for m in platform.received[count:] if m["type"] == link.APPLY_RESULT]


async def test_the_welcome_target_is_applied(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    platform.welcome_target = platform.sign_target(2, {"flows.json": FLOWS})
    async with Agent(identity, paths) as agent:
        result = await platform.wait_for(link.APPLY_RESULT)
        assert result["outcome"] == "applied"
        assert agent.applier.applied == [(2, FLOWS)]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unsigned", "unsigned"),
        ("tampered", "bad_signature"),
        ("unknown key", "unknown_key"),
        ("wrong team", "wrong_team"),
        ("wrong device", "wrong_device"),
        ("older generation", "stale"),
        ("generation mismatch", "malformed"),
    ],
)
async def test_bad_targets_are_refused_and_the_current_flows_keep_running(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths, case: str, code: str
) -> None:
    """Family 24: every bad target is refused with its code; nothing is fetched or applied."""
    async with Agent(identity, paths) as agent:
        await platform.connected()
        good = platform.sign_target(10, {"flows.json": FLOWS})
        await platform.send({"type": link.TARGET, "target": good})
        await platform.wait_for(link.APPLY_RESULT)
        active = dict(agent.store.state["active"])
        target = platform.sign_target(11, {"flows.json": b"[]"})
        envelope = target["manifest"]
        if case == "unsigned":
            del envelope["signature"]
        elif case == "tampered":
            envelope["manifest"]["parts"]["flows.json"]["size"] += 1
        elif case == "unknown key":
            other, _ = manifest.generate_signing_key()
            target = platform.sign_target(11, {"flows.json": b"[]"}, private_key=other)
        elif case == "wrong team":
            target = platform.sign_target(11, {"flows.json": b"[]"}, team="8")
        elif case == "wrong device":
            target = platform.sign_target(11, {"flows.json": b"[]"}, device="13")
        elif case == "older generation":
            target = platform.sign_target(9, {"flows.json": b"[]"})
        elif case == "generation mismatch":
            target["generation"] = 12
        fetched = len(platform.ranges)
        await platform.send({"type": link.TARGET, "target": target})
        result = await platform.wait_for(link.APPLY_RESULT, lambda m: m["outcome"] == "refused")
        assert result["reason"].startswith(code + ":")
        assert result["active"] == active
        assert agent.applier.applied == [(10, FLOWS)]
        assert agent.store.state["active"] == active
        assert len(platform.ranges) == fetched  # nothing downloaded
        beat = await agent.client.heartbeat()
        assert beat["target"] == {"generation": target["generation"], "outcome": "refused"}


async def test_a_tampered_part_is_refused_and_its_download_removed(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    async with Agent(identity, paths) as agent:
        await platform.connected()
        target = platform.sign_target(3, {"flows.json": FLOWS})
        platform.bundles[(3, "flows.json")] = FLOWS.replace(b"tab", b"tub")
        await platform.send({"type": link.TARGET, "target": target})
        result = await platform.wait_for(link.APPLY_RESULT)
        assert result["outcome"] == "refused"
        assert result["reason"].startswith("part_hash:")
        assert agent.applier.applied == []
        assert not (paths.snapshots / ".incoming" / "3").exists()


@pytest.mark.parametrize("skew_hours", [-2, 2])
async def test_clock_skew_does_not_matter(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths, skew_hours: int
) -> None:
    """Family 29: a manifest issued two hours in the device's future or past is applied."""
    issued = f"2026-12-03T{12 + skew_hours:02d}:00:00Z"
    async with Agent(identity, paths) as agent:
        await platform.connected()
        target = platform.sign_target(4, {"flows.json": FLOWS}, issued_at=issued)
        await platform.send({"type": link.TARGET, "target": target})
        result = await platform.wait_for(link.APPLY_RESULT)
        assert result["outcome"] == "applied"
        assert agent.applier.applied == [(4, FLOWS)]


async def test_malformed_frames_are_dropped_and_the_link_keeps_working(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    async with Agent(identity, paths) as agent:
        await platform.connected()
        for junk in (
            "not json",
            "[1, 2]",
            json.dumps({"type": "reboot"}),
            json.dumps({"type": "target"}),
            json.dumps({"type": "target", "target": "yes"}),
            json.dumps({"type": "watch", "on": "yes"}),
            json.dumps({"type": "dev_request", "request": 1, "method": "GET", "path": "/flows"}),
            json.dumps(
                {
                    "type": "welcome",
                    "protocol": 1,
                    "device": {},
                    "heartbeat_seconds": 1,
                    "keys": {"keys": {}, "key_id": "k", "signature": "!!"},
                }
            ),
        ):
            await platform.send(junk)
        target = platform.sign_target(6, {"flows.json": FLOWS})
        await platform.send({"type": link.TARGET, "target": target})
        result = await platform.wait_for(link.APPLY_RESULT)
        assert result["outcome"] == "applied"
        assert platform.handshakes == 1
        assert agent.client.identity.signing_keys == (platform.public_key,)


async def test_a_key_list_signed_by_a_trusted_key_is_pinned(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    new_private, new_public = manifest.generate_signing_key()
    platform.welcome_keys = platform.signed_keys([new_public, platform.public_key])
    async with Agent(identity, paths) as agent:
        await platform.connected()
        await asyncio.sleep(0.2)
        assert agent.client.identity.signing_keys == (new_public, platform.public_key)
        assert Identity.load(paths).signing_keys == (new_public, platform.public_key)
        # a target signed by the new key is now accepted
        target = platform.sign_target(7, {"flows.json": FLOWS}, private_key=new_private)
        await platform.send({"type": link.TARGET, "target": target})
        assert (await platform.wait_for(link.APPLY_RESULT))["outcome"] == "applied"


async def test_a_key_list_signed_by_an_unknown_key_is_ignored(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    rogue_private, rogue_public = manifest.generate_signing_key()
    platform.welcome_keys = platform.signed_keys([rogue_public], private_key=rogue_private)
    async with Agent(identity, paths) as agent:
        await platform.connected()
        await asyncio.sleep(0.2)
        assert agent.client.identity.signing_keys == (platform.public_key,)
        assert Identity.load(paths).signing_keys == (platform.public_key,)


async def test_suspend_ignores_targets_and_dev_requests_until_resume(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    async with Agent(identity, paths) as agent:
        await platform.connected()
        await platform.send({"type": link.SUSPEND})
        await platform.send(
            {"type": link.TARGET, "target": platform.sign_target(8, {"flows.json": FLOWS})}
        )
        await platform.send(
            {"type": link.DEV_REQUEST, "request": "r1", "method": "GET", "path": "/flows"}
        )
        denied = await platform.wait_for(link.DEV_RESULT)
        assert denied["status"] == 403
        assert denied["body"]["code"] == "suspended"
        assert (await agent.client.heartbeat())["state"] == "suspended"
        assert agent.applier.applied == []
        assert agent.engine.requests == []
        await platform.send({"type": link.RESUME})
        await platform.send(
            {"type": link.TARGET, "target": platform.sign_target(8, {"flows.json": FLOWS})}
        )
        assert (await platform.wait_for(link.APPLY_RESULT))["outcome"] == "applied"


async def test_dev_requests_reach_only_the_allowed_admin_routes(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    async with Agent(identity, paths) as agent:
        await platform.connected()
        asks = [
            ("ok", "GET", "/flows/state"),
            ("inject", "POST", "/inject/abc.1"),
            ("settings", "GET", "/settings"),
            ("traversal", "GET", "/flows/../auth/token"),
            ("delete", "DELETE", "/flows"),
            ("query", "GET", "/flows?x=1"),
        ]
        for request, method, path in asks:
            await platform.send(
                {"type": link.DEV_REQUEST, "request": request, "method": method, "path": path}
            )
        answers = {}
        for request, _, _ in asks:
            answers[request] = await platform.wait_for(
                link.DEV_RESULT,
                lambda m, r=request: m["request"] == r,  # type: ignore[misc]  # default binds the loop value
            )
        assert answers["ok"]["status"] == 200
        assert answers["inject"]["status"] == 200
        for refused in ("settings", "traversal", "delete", "query"):
            assert answers[refused]["status"] == 403
            assert answers[refused]["body"]["code"] == "forbidden_path"
        assert agent.engine.requests == [
            ("GET", "/flows/state", None),
            ("POST", "/inject/abc.1", None),
        ]


def sealed_to(identity: Identity, credentials: Any, *, device: str | None = None) -> str:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    public = X25519PrivateKey.from_private_bytes(identity.sealing_private_key).public_key()
    sealed = manifest.seal(
        manifest.canonical_json(credentials),
        recipient_public_key=public.public_bytes_raw(),
        device=device or identity.device_id,
    )
    return base64.b64encode(sealed).decode()


async def test_dev_deploy_credentials_are_opened_into_their_nodes(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    nodes = [
        {"id": "t1", "type": "tab"},
        {"id": "broker", "type": "mqtt-broker", "z": ""},
        {"id": "other", "type": "mqtt-broker", "z": ""},
    ]
    secret = {"broker": {"user": "plc", "password": "canary-Pa55-xyz"}}
    _, other_public = manifest.generate_sealing_key()
    stranger = base64.b64encode(
        manifest.seal(b"{}", recipient_public_key=other_public, device=identity.device_id)
    ).decode()
    asks = {
        "good": sealed_to(identity, secret),
        "other device": sealed_to(identity, secret, device="not-me"),
        "other key": stranger,
        "not base64": "!!!",
        "not an object": sealed_to(identity, ["broker"]),
        "not text": sealed_to(identity, {"broker": {"port": 1883}}),
    }
    async with Agent(identity, paths) as agent:
        await platform.connected()
        for request, blob in asks.items():
            await platform.send(
                {"type": link.DEV_REQUEST, "request": request, "method": "POST",
                 "path": "/flows", "body": {"flows": nodes, "credentials_sealed": blob}}
            )  # fmt: skip
            await platform.wait_for(
                link.DEV_RESULT,
                lambda m, r=request: m["request"] == r,  # type: ignore[misc]  # default binds the loop value
            )
        answers = {m["request"]: m for m in platform.received if m["type"] == link.DEV_RESULT}
    assert answers["good"]["status"] == 200
    for refused in ("other device", "other key", "not base64", "not an object", "not text"):
        assert answers[refused]["status"] == 400, refused
        assert answers[refused]["body"]["code"] == "bad_credentials"
    # Only the good one reached the engine, with the credentials inline in their node alone.
    assert len(agent.engine.requests) == 1
    method, path, body = agent.engine.requests[0]
    assert (method, path) == ("POST", "/flows")
    assert set(body) == {"flows"}
    assert body["flows"] == [nodes[0], {**nodes[1], "credentials": secret["broker"]}, nodes[2]]


def test_dev_routes() -> None:
    assert dev_route_allowed("GET", "/flows")
    assert dev_route_allowed("POST", "/flows")
    assert not dev_route_allowed("GET", "/flows/")
    assert not dev_route_allowed("POST", "/inject/")
    assert not dev_route_allowed("POST", "/inject/a/b")


async def assert_not_streamed(platform: PlatformDouble, agent: Agent) -> None:
    """A new item is not sent (no watch, or its lease ended)."""
    count = len(platform.received)
    agent.stream.add("debug", node="n1", msg="unwatched")
    await asyncio.sleep(0.4)
    assert not [m for m in platform.received[count:] if m["type"] == link.STREAM]


async def test_watch_streams_items_and_replays_since_with_an_overflow_marker(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    async with Agent(identity, paths, stream=StreamBuffer(capacity=50, epoch="e1")) as agent:
        await platform.connected()
        for n in range(80):
            agent.stream.add("debug", node="n1", msg=n)
        await platform.send({"type": link.WATCH, "on": True, "lease_seconds": 5, "since": 10})
        first = await platform.wait_for(link.STREAM)
        assert first["epoch"] == "e1"
        assert first["overflow"] == {"first_seq": 11, "last_seq": 30}
        assert [i["seq"] for i in first["items"]] == list(range(31, 81))
        count = len(platform.received)
        agent.stream.add("status", node="n2", status={"fill": "green"})
        live = await platform.wait_for(link.STREAM, after=count)
        assert [i["seq"] for i in live["items"]] == [81]
        await platform.send({"type": link.WATCH, "on": False})
        await asyncio.sleep(0.2)
        await assert_not_streamed(platform, agent)


async def test_the_watch_lease_ends_the_stream(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    async with Agent(identity, paths) as agent:
        await platform.connected()
        await platform.send({"type": link.WATCH, "on": True, "lease_seconds": 0.3})
        await asyncio.sleep(0.6)
        await assert_not_streamed(platform, agent)


async def test_decommission_wipes_and_stops(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    stopped: list[bool] = []

    async def before_wipe() -> None:
        stopped.append(paths.device.exists())

    paths.agent_state.write_text("{}")
    paths.credentials.write_text("{}")
    agent = Agent(identity, paths, on_decommission=before_wipe)
    task = asyncio.ensure_future(agent.client.run())
    await platform.connected()
    await platform.send({"type": link.DECOMMISSION})
    await asyncio.wait_for(task, 10)
    assert agent.client.decommissioned
    assert stopped == [True]  # the engine stops before the files go
    assert not paths.device.exists()
    assert not paths.agent_state.exists()
    assert not paths.credentials.exists()


async def test_decommission_wipes_before_it_says_stopped(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    """As ``edge-runner run`` does: once the link says stopped, its task is cancelled. The
    engine's stop takes a while; the wipe must not be lost to that cancel."""

    async def slow_engine_stop() -> None:
        await asyncio.sleep(0.3)

    agent = Agent(identity, paths, on_decommission=slow_engine_stop)
    task = asyncio.ensure_future(agent.client.run())
    await platform.connected()
    await platform.send({"type": link.DECOMMISSION})
    await asyncio.wait_for(agent.client.wait_stopped(), 10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert agent.client.decommissioned
    assert not paths.device.exists()
    assert not paths.identity.exists()


async def test_a_refused_handshake_of_a_decommissioned_device_wipes_and_stops(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    platform.handshake_status = 403
    platform.self_answer = (401, {"code": "decommissioned", "message": "gone"})
    agent = Agent(identity, paths)
    await asyncio.wait_for(agent.client.run(), 10)
    assert agent.client.decommissioned
    assert platform.self_checks == 1
    assert not paths.device.exists()


async def test_a_refused_handshake_otherwise_keeps_backing_off(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    platform.handshake_status = 403
    platform.self_answer = (401, {"code": "invalid_credential", "message": "no"})
    async with Agent(identity, paths, backoff_base=0.05, backoff_cap=0.2) as agent:
        await asyncio.sleep(0.8)
        assert platform.handshakes >= 2
        assert not agent.client.decommissioned
    assert paths.device.exists()


async def test_the_link_comes_back_after_the_platform_restarts(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    async with Agent(identity, paths, backoff_base=0.05, backoff_cap=0.2, first_window=0.2):
        await platform.connected()
        port = platform.port
        await platform.stop()
        await asyncio.sleep(0.5)
        again = await PlatformDouble().start(port=port)
        try:
            await again.connected()
            target = again.sign_target(1, {"flows.json": FLOWS}, private_key=platform.private_key)
            await again.send({"type": link.TARGET, "target": target})
            assert (await again.wait_for(link.APPLY_RESULT))["outcome"] == "applied"
        finally:
            await again.stop()


def storm_identity(url: str) -> Identity:
    return Identity(
        platform_url=url,
        device_id="12",
        team="7",
        name="",
        signing_keys=(b"\0" * 32,),
        sealing_private_key=b"\0" * 32,
        credential="mfd_device_credential_for_tests",
    )


# clients, first window, backoff base and cap of the reconnect storm tests (family 26)
STORM = (200, 2.0, 0.5, 4.0)


def storm(identity: Identity, paths: RunnerPaths) -> list[Agent]:
    """The storm's clients, each with its own seeded schedule."""
    clients, window, base, cap = STORM
    return [
        Agent(identity, paths, rng=random.Random(n), first_window=window, backoff_base=base,
              backoff_cap=cap)
        for n in range(clients)
    ]  # fmt: skip


def assert_on_schedule(
    agent: Agent, started: float, window: float, base: float, cap: float
) -> None:
    """The client never reconnected earlier than the delay it drew, and every delay lies in
    its window: first ``window``, then ``min(cap, base * 2**n)`` after n failures."""
    previous = started
    for attempt, delay in zip(agent.client.attempts, agent.client.delays, strict=False):
        assert attempt - previous >= delay - 0.01
        previous = attempt
    for failures, delay in enumerate(list(agent.client.delays)[1:]):
        assert delay <= max(window, min(cap, base * 2**failures))


def peak_per_second(times: list[float]) -> int:
    return max((sum(1 for t in times if s <= t < s + 1.0) for s in times), default=0)


@pytest.mark.slow
async def test_a_dead_platform_is_retried_on_the_backoff_schedule(paths: RunnerPaths) -> None:
    """Family 26: 200 clients against a closed port retry no faster than their schedules."""
    from tests.edge_runner.agent.platform_double import free_port

    clients, window, base, cap = STORM
    agents = storm(storm_identity(f"http://127.0.0.1:{free_port()}"), paths)
    started = asyncio.get_running_loop().time()
    tasks = [asyncio.ensure_future(a.client.run()) for a in agents]
    await asyncio.sleep(6.0)
    for agent in agents:
        await agent.client.stop()
    await asyncio.gather(*tasks)
    first = [a.client.attempts[0] for a in agents]
    times = [t for a in agents for t in a.client.attempts]
    print(
        f"\ndead platform: {clients} clients, {len(times)} attempts in 6 s, first attempts "
        f"peak {peak_per_second(first)}/s (N/window {clients / window:g}/s), all attempts "
        f"peak {peak_per_second(times)}/s"
    )
    for agent in agents:
        assert_on_schedule(agent, started, window, base, cap)
        assert len(agent.client.attempts) <= 2 + 6.0 / 0.01  # bounded by the floor
    assert peak_per_second(first) <= 2 * clients / window


@pytest.mark.slow
async def test_a_restarted_platform_sees_a_flat_reconnect_rate(paths: RunnerPaths) -> None:
    """Family 26: 200 connected clients lose the platform; the restarted platform sees their
    handshakes spread over the jitter window, and every client comes back."""
    clients, window, base, cap = STORM
    platform = await PlatformDouble().start()
    port = platform.port
    agents = storm(storm_identity(platform.url), paths)
    tasks = [asyncio.ensure_future(a.client.run()) for a in agents]
    try:
        await platform.count(link.HELLO, clients)
        await platform.stop()
        again = await PlatformDouble().start(port=port)
        restarted = asyncio.get_running_loop().time()
        try:
            await again.count(link.HELLO, clients)
            times = again.handshake_times
            print(
                f"\nrestarted platform: {len(times)} handshakes for {clients} clients in "
                f"{max(times) - restarted:.1f} s, peak {peak_per_second(times)}/s "
                f"(N/window {clients / window:g}/s)"
            )
            assert peak_per_second(times) <= 2 * clients / window
            for agent in agents:
                assert_on_schedule(
                    agent, agent.client.attempts[0] - agent.client.delays[0], window, base, cap
                )
        finally:
            for agent in agents:
                await agent.client.stop()
            await asyncio.gather(*tasks)
            await again.stop()
    finally:
        for task in tasks:
            task.cancel()


async def test_a_device_welcomed_as_suspended_takes_no_target(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    platform.device_status = "suspended"
    platform.welcome_target = platform.sign_target(2, {"flows.json": FLOWS})
    async with Agent(identity, paths) as agent:
        await platform.connected()
        await asyncio.sleep(0.3)
        assert agent.client.suspended
        assert (await agent.client.heartbeat())["state"] == "suspended"
        assert agent.applier.applied == []


async def test_a_new_watcher_first_gets_every_node_status_the_engine_showed(
    platform: PlatformDouble, identity: Identity, paths: RunnerPaths
) -> None:
    async with Agent(identity, paths) as agent:
        agent.client.applier.watch = SimpleNamespace(  # type: ignore[attr-defined]  # the real Applier has one
            statuses={"poll": {"fill": "green", "shape": "dot", "text": "connected"}}
        )
        await platform.connected()
        await platform.send({"type": link.WATCH, "on": True, "lease_seconds": 5})
        first = await platform.wait_for(link.STREAM)
        assert [(i["kind"], i["node"], i["status"]["text"]) for i in first["items"]] == [
            ("status", "poll", "connected")
        ]
