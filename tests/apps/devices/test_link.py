"""The device link under a real uvicorn server with real websocket clients as runners.

Families 10 (refused before accept), 11 (revocation), 13 (limits) and the self-healing target
delivery of docs/device-protocol.md. With MANIFOLD_REDIS_URL set the same tests run on the
Redis channel layer. Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from django.db import connections
from websockets.exceptions import ConnectionClosed, InvalidStatus

from apps.accounts.principal import Principal
from apps.accounts.services import token_create
from apps.audit.models import AuditEvent
from apps.devices import bus
from apps.devices.auth import hash_secret, retired_credential_marker
from apps.devices.models import (
    Device,
    DeviceHeartbeat,
    DeviceStateChange,
    DeviceStatus,
    DeviceTarget,
    TargetOutcome,
)
from apps.devices.services import targets as target_services
from apps.devices.services.targets import device_set_target
from apps.snapshots.services import signed_key_list, team_signing_keys
from edge_runner.protocol import link, manifest
from tests.apps.devices.linkworld import Runner, open_link, register, server, snapshot
from tests.conftest import Acme

pytestmark = [pytest.mark.django_db(transaction=True)]
__all__ = ["server"]
T = TypeVar("T")


async def db(work: Callable[[], T]) -> T:
    """ORM work from the test's event loop, in a thread (as the consumer does)."""

    def run() -> T:
        try:
            return work()
        finally:
            connections.close_all()

    return await asyncio.to_thread(run)


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await db(check):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def result(
    snapshot_id: int, generation: int, outcome: str, reason: str = "", active: Any = None
) -> dict[str, Any]:
    return {"type": "apply_result", "snapshot": str(snapshot_id), "generation": generation,
            "outcome": outcome, "reason": reason, "active": active}  # fmt: skip


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


# ---------------------------------------------------------------------- handshake (family 10)
@pytest.mark.parametrize("case", ["none", "garbage", "user_token", "revoked", "decommissioned"])
def test_bad_credentials_are_refused_before_accept(
    acme_world: Acme, server: str, case: str
) -> None:
    device = register(acme_world.line_1, "press-1")
    credential = {
        "none": "",
        "garbage": "mfd_not-a-credential",
        "user_token": token_create(
            principal=Principal.for_user(acme_world.olivia), name="t"
        ).secret,
        "revoked": device.credential,
        "decommissioned": device.credential,
    }[case]
    if case == "revoked":
        Device.objects.filter(pk=device.device.pk).update(credential_hash=hash_secret("mfd_new"))
    if case == "decommissioned":
        from django.utils import timezone

        Device.objects.filter(pk=device.device.pk).update(
            decommissioned_at=timezone.now(),
            credential_hash=retired_credential_marker(hash_secret(device.credential)),
        )

    async def attempt() -> int:
        with pytest.raises(InvalidStatus) as refused:
            await open_link(server, credential)
        return refused.value.response.status_code

    assert asyncio.run(attempt()) == 403
    assert Device.objects.get(pk=device.device.pk).status == DeviceStatus.PENDING
    refusals = AuditEvent.objects.filter(event="device.link.refused")
    assert refusals.count() == 1
    if case == "decommissioned":
        assert refusals.get().team_key == acme_world.team.pk  # the device's own chain

    # Audited once a minute per device/address, however often it retries.
    for _ in range(3):
        assert asyncio.run(attempt()) == 403
    assert refusals.count() == 1


# ---------------------------------------------------------------------- hello, heartbeat, targets
def test_hello_gets_the_signed_target_and_the_signed_key_list(
    acme_world: Acme, server: str
) -> None:
    device = register(acme_world.line_1, "press-1")
    target = device_set_target(
        principal=Principal.for_user(acme_world.olivia),
        device=device.device,
        snapshot=snapshot(acme_world.line_1),
    )
    trusted = team_signing_keys(acme_world.team)

    async def scenario() -> dict[str, Any]:
        runner, welcome = await Runner.join(server, device.credential)
        await runner.socket.close()
        return welcome

    welcome = asyncio.run(scenario())
    assert welcome["protocol"] == link.PROTOCOL_VERSION
    assert welcome["device"]["id"] == device.device.pk
    assert welcome["heartbeat_seconds"] == pytest.approx(0.2)
    assert manifest.verify_keys(welcome["keys"], trusted_keys=trusted, team=str(acme_world.team.pk))
    verified = manifest.verify(
        welcome["target"]["manifest"],
        trusted_keys=trusted,
        team=str(acme_world.team.pk),
        device=str(device.device.pk),
    )
    assert verified.generation == target.generation == welcome["target"]["generation"]
    assert verified.digest == target.digest
    assert welcome["keys"] == signed_key_list(acme_world.team) or welcome["keys"]["keys"]


def test_heartbeat_writes_the_live_state_history_and_time_series(
    acme_world: Acme, server: str
) -> None:
    device = register(acme_world.line_1, "press-1")
    pk = device.device.pk

    async def scenario() -> None:
        runner, _ = await Runner.join(server, device.credential)
        await until(lambda: Device.objects.get(pk=pk).status == DeviceStatus.ONLINE)
        await runner.heartbeat("error", errors=[{"time": "t", "node": "dbg", "message": "boom"}])
        await until(lambda: Device.objects.get(pk=pk).status == DeviceStatus.ERROR)
        from django.test.utils import CaptureQueriesContext

        def count() -> int:
            from apps.devices.services.link import LinkSession, link_heartbeat

            row = Device.objects.get(pk=pk)
            session = LinkSession(
                pk, row.team_id, row.name, row.credential_hash or "", False, time.monotonic()
            )
            with CaptureQueriesContext(connections["default"]) as queries:
                link_heartbeat(
                    session,
                    {"type": "heartbeat", "state": "error", "resources": {"cpu_percent": 3.5},
                     "nodes": {"total": 3, "error": 0},
                     "errors": [{"time": "t", "node": "dbg", "message": "boom"}]},
                    time.monotonic(),
                )  # fmt: skip
            print(f"queries per steady heartbeat: {len(queries)}")
            for query in queries.captured_queries:
                print("   ", query["sql"][:120])
            return len(queries)

        assert await db(count) <= 4
        await runner.socket.close()
        await until(lambda: Device.objects.get(pk=pk).status == DeviceStatus.OFFLINE)

    asyncio.run(scenario())
    row = Device.objects.get(pk=pk)
    assert row.resources["cpu_percent"] == 3.5
    assert row.nodes == {"total": 3, "error": 0}
    assert row.last_errors == [{"time": "t", "node": "dbg", "message": "boom"}]
    assert DeviceHeartbeat.objects.filter(device=row).count() >= 1
    statuses = list(
        DeviceStateChange.objects.filter(device=row)
        .order_by("at", "id")
        .values_list("status", flat=True)
    )
    assert statuses == [DeviceStatus.ONLINE, DeviceStatus.ERROR, DeviceStatus.OFFLINE]


def test_a_new_target_is_pushed_at_once(acme_world: Acme, server: str) -> None:
    device = register(acme_world.line_1, "press-1")
    v1 = snapshot(acme_world.line_1)

    async def scenario() -> tuple[dict[str, Any], float]:
        runner, welcome = await Runner.join(server, device.credential)
        assert welcome["target"] is None
        started = time.monotonic()
        await db(lambda: device_set_target(
            principal=Principal.for_user(acme_world.olivia), device=device.device, snapshot=v1
        ))  # fmt: skip
        frame = await runner.expect("target", within=5)
        took = time.monotonic() - started
        await runner.socket.close()
        return frame, took

    frame, took = asyncio.run(scenario())
    print(f"target pushed to the live link in {took * 1000:.0f} ms")
    assert frame["target"]["snapshot"] == str(v1.pk)


def test_a_lost_push_is_healed_by_the_next_heartbeat(
    acme_world: Acme, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = register(acme_world.line_1, "press-1")
    v1 = snapshot(acme_world.line_1)
    # The fast path's group message is lost (Redis restart, full channel).
    monkeypatch.setattr(target_services, "tell_device", lambda *args, **kwargs: None)

    async def scenario() -> dict[str, Any]:
        runner, _ = await Runner.join(server, device.credential)
        # Once the link holds the device (the hello's record; a target issued before is
        # caught by the re-read that follows it, not by a heartbeat).
        await until(lambda: bool(bus.link_channel(device.device.pk)))
        await db(lambda: device_set_target(
            principal=Principal.for_user(acme_world.olivia), device=device.device, snapshot=v1
        ))  # fmt: skip
        with pytest.raises(TimeoutError):
            await runner.expect("target", within=0.5)
        await runner.heartbeat()
        frame = await runner.expect("target", within=5)
        # Reporting the generation it handled: nothing more is sent.
        runner.handled = {"generation": frame["target"]["generation"], "outcome": "applied"}
        await runner.heartbeat()
        with pytest.raises(TimeoutError):
            await runner.expect("target", within=0.5)
        await runner.socket.close()
        return frame

    frame = asyncio.run(scenario())
    assert frame["target"]["snapshot"] == str(v1.pk)


def test_a_suspended_device_gets_its_target_on_resume(acme_world: Acme, server: str) -> None:
    device = register(acme_world.line_1, "press-1")
    Device.objects.filter(pk=device.device.pk).update(suspended=True)
    v1 = snapshot(acme_world.line_1)
    device_set_target(
        principal=Principal.for_user(acme_world.olivia),
        device=Device.objects.get(pk=device.device.pk),
        snapshot=v1,
    )

    async def scenario() -> dict[str, Any]:
        runner, welcome = await Runner.join(server, device.credential)
        assert welcome["target"] is None
        await runner.heartbeat("suspended")
        with pytest.raises(TimeoutError):
            await runner.expect("target", within=0.5)

        def resume() -> None:
            from django.db import transaction

            with transaction.atomic():
                Device.objects.filter(pk=device.device.pk).update(suspended=False)
                bus.tell_device(device.device.pk, "resume")

        await db(resume)
        await runner.expect("resume")
        frame = await runner.expect("target")
        # Suspended again, and the group message is lost: the next heartbeat says so.
        await db(lambda: Device.objects.filter(pk=device.device.pk).update(suspended=True))
        await runner.heartbeat("running")
        await runner.expect("suspend")
        await runner.socket.close()
        return frame

    assert asyncio.run(scenario())["target"]["snapshot"] == str(v1.pk)


def test_apply_result_records_the_outcome_and_the_active_snapshot(
    acme_world: Acme, server: str, audit_log: Callable[[Any], list[str]]
) -> None:
    device = register(acme_world.line_1, "press-1")
    v1 = snapshot(acme_world.line_1, "v1")
    v2 = snapshot(acme_world.line_1, "v2")
    olivia = Principal.for_user(acme_world.olivia)
    first = device_set_target(principal=olivia, device=device.device, snapshot=v1)

    async def scenario() -> None:
        runner, _ = await Runner.join(server, device.credential)
        await runner.send(result(v1.pk, first.generation, "applied"))
        await until(lambda: Device.objects.get(pk=device.device.pk).active_target_id == first.pk)
        second = await db(lambda: device_set_target(
            principal=olivia, device=Device.objects.get(pk=device.device.pk), snapshot=v2
        ))  # fmt: skip
        await runner.expect("target")
        active = {"snapshot": str(v1.pk), "generation": first.generation, "digest": first.digest}
        await runner.send(
            result(v2.pk, second.generation, "rolled_back", "node dbg failed to start", active)
        )
        await until(
            lambda: DeviceTarget.objects.get(pk=second.pk).outcome == TargetOutcome.ROLLED_BACK
        )
        # A generation never issued to this device: an error frame, nothing changes.
        await runner.send(result(v2.pk, 99999, "applied"))
        error = await runner.expect("error")
        assert error["code"] == "unknown_target"
        await runner.socket.close()

    asyncio.run(scenario())
    row = Device.objects.get(pk=device.device.pk)
    assert row.active_target_id == first.pk
    second = DeviceTarget.objects.get(device=row, snapshot=v2)
    assert second.reason == "node dbg failed to start"
    assert second.reported_at is not None
    events = audit_log(acme_world.team)
    assert "device.target.applied" in events
    assert "device.target.rolled_back" in events
    assert DeviceStateChange.objects.filter(device=row, active_target=first).exists(), (
        "the history names the applied target"
    )


# ---------------------------------------------------------------------- one link, limits
def test_a_second_link_closes_the_first_with_4409(acme_world: Acme, server: str) -> None:
    device = register(acme_world.line_1, "press-1")

    async def scenario() -> tuple[int | None, str]:
        first, _ = await Runner.join(server, device.credential)
        second, _ = await Runner.join(server, device.credential)
        code = await first.closed()
        await second.heartbeat()
        await asyncio.sleep(0.3)
        status = await db(lambda: Device.objects.get(pk=device.device.pk).status)
        await second.socket.close()
        return code, status

    code, status = asyncio.run(scenario())
    assert code == link.CLOSE_REPLACED
    assert status == DeviceStatus.ONLINE, (
        "the replaced socket's disconnect must not mark it offline"
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("x" * (link.MAX_FRAME_BYTES + 1), link.CLOSE_TOO_BIG),
        ("é" * (link.MAX_FRAME_BYTES // 2 + 1), link.CLOSE_TOO_BIG),  # bytes, not characters
        ("{not json", link.CLOSE_MALFORMED),
        ('{"type": "welcome"}', link.CLOSE_MALFORMED),  # a platform message
        ('{"type": "heartbeat", "state": "dancing"}', link.CLOSE_MALFORMED),
    ],
)
def test_bad_frames_close_the_link(acme_world: Acme, server: str, frame: str, code: int) -> None:
    device = register(acme_world.line_1, "press-1")

    async def scenario() -> int | None:
        runner, _ = await Runner.join(server, device.credential)
        await runner.socket.send(frame)
        return await runner.closed()

    assert asyncio.run(scenario()) == code
    assert AuditEvent.objects.filter(event="device.link.closed").count() == 1


def test_a_frame_before_hello_closes_4400(acme_world: Acme, server: str) -> None:
    device = register(acme_world.line_1, "press-1")

    async def scenario() -> int | None:
        runner = Runner(await open_link(server, device.credential))
        await runner.heartbeat()
        return await runner.closed()

    assert asyncio.run(scenario()) == link.CLOSE_MALFORMED


def test_a_flood_closes_4429_and_the_neighbour_keeps_its_latency(
    acme_world: Acme, server: str
) -> None:
    flooder = register(acme_world.line_1, "flooder")
    neighbour = register(acme_world.line_1, "neighbour")
    device_set_target(
        principal=Principal.for_user(acme_world.olivia),
        device=neighbour.device,
        snapshot=snapshot(acme_world.line_1),
    )

    async def round_trips(runner: Runner, count: int) -> list[float]:
        # A heartbeat reporting no target is answered with the target: a real round trip.
        took = []
        for _ in range(count):
            started = time.monotonic()
            await runner.heartbeat()
            await runner.expect("target")
            took.append(time.monotonic() - started)
        return took

    async def flood(runner: Runner) -> tuple[int, int | None]:
        sent = 0
        frame = '{"type":"stream","epoch":"e","items":[]}'
        try:
            while True:
                await runner.socket.send(frame)
                sent += 1
                if sent % 100 == 0:
                    await asyncio.sleep(0)
        except ConnectionClosed:
            pass  # the server closed the socket: that is the point
        return sent, await runner.closed()

    async def scenario() -> tuple[list[float], list[float], int, int | None]:
        near, _ = await Runner.join(server, neighbour.credential)
        before = await round_trips(near, 50)
        loud, _ = await Runner.join(server, flooder.credential)
        flooding = asyncio.create_task(flood(loud))
        during = await round_trips(near, 50)
        sent, code = await flooding
        await near.socket.close()
        return before, during, sent, code

    before, during, sent, code = asyncio.run(scenario())
    assert code == link.CLOSE_RATE
    print(
        f"flood: closed 4429 after {sent} frames sent; neighbour heartbeat round trip p99 "
        f"{percentile(before, 0.99) * 1000:.1f} ms before, {percentile(during, 0.99) * 1000:.1f} "
        f"ms during (median {statistics.median(before) * 1000:.1f} -> "
        f"{statistics.median(during) * 1000:.1f} ms)"
    )


def masked_text_frame(text: str) -> bytes:
    """One client-to-server text frame (RFC 6455: masked), built by hand."""
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def test_a_flooder_that_never_reads_the_close_is_cut_off(acme_world: Acme, server: str) -> None:
    """A peer that keeps sending after the platform closed its link (4429) and never reads the
    close frame is dropped (config.websocket), not read and parsed for uvicorn's 10 s."""
    flooder = register(acme_world.line_1, "flooder")
    host, port = server.removeprefix("ws://").split(":")
    hello = {"type": "hello", "protocol": link.PROTOCOL_VERSION, "agent_version": "t",
             "state": "running", "active": None, "target": None}  # fmt: skip
    burst = masked_text_frame('{"type":"stream","epoch":"e","items":[]}') * 200

    def flood() -> tuple[float, int]:
        with socket.create_connection((host, int(port)), timeout=30) as raw:
            raw.sendall(
                (
                    f"GET {link.LINK_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                    f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {flooder.credential}"
                    "\r\n\r\n"
                ).encode()
            )
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += raw.recv(4096)
            assert answer.startswith(b"HTTP/1.1 101"), answer[:200]
            raw.sendall(masked_text_frame(json.dumps(hello, separators=(",", ":"))))
            started, sent = time.monotonic(), 0
            try:
                while time.monotonic() - started < 20:
                    raw.sendall(burst)  # never reads: the close frame waits unread
                    sent += 200
            except OSError:  # reset: the server dropped the connection
                return time.monotonic() - started, sent
            return float("inf"), sent

    took, sent = flood()
    print(f"flooder that never reads: cut off after {took:.2f} s and {sent} frames")
    assert took < 6, "the server kept reading a peer that ignores its close"
    closed = AuditEvent.objects.filter(event="device.link.closed", target_id=str(flooder.device.pk))
    assert [event.after["code"] for event in closed if event.after] == [link.CLOSE_RATE]


# ---------------------------------------------------------------------- revocation (family 11)
def test_decommission_closes_the_live_link_within_a_second(acme_world: Acme, server: str) -> None:
    device = register(acme_world.line_1, "press-1")

    async def scenario() -> tuple[int | None, float, list[str]]:
        runner, _ = await Runner.join(server, device.credential)

        def decommission() -> float:
            from django.db import transaction
            from django.utils import timezone

            with transaction.atomic():
                Device.objects.filter(pk=device.device.pk).update(
                    decommissioned_at=timezone.now(),
                    status=DeviceStatus.DECOMMISSIONED,
                    credential_hash=retired_credential_marker(hash_secret(device.credential)),
                )
                bus.tell_device(device.device.pk, "decommission")
            return time.monotonic()

        committed = await db(decommission)
        seen = [(await runner.recv())["type"]]
        code = await runner.closed()
        return code, time.monotonic() - committed, seen

    code, took, seen = asyncio.run(scenario())
    print(f"decommission: live link closed {took * 1000:.0f} ms after commit")
    assert seen == ["decommission"]
    assert code == link.CLOSE_DECOMMISSIONED


def test_a_revoked_credential_closes_at_the_next_heartbeat_without_any_message(
    acme_world: Acme, server: str
) -> None:
    device = register(acme_world.line_1, "press-1")

    async def scenario() -> int | None:
        runner, _ = await Runner.join(server, device.credential)
        # Rotated in the database, and the group message that should tell the link is lost.
        await db(lambda: Device.objects.filter(pk=device.device.pk).update(
            credential_hash=hash_secret("mfd_rotated")
        ))  # fmt: skip
        await runner.heartbeat()
        return await runner.closed()

    assert asyncio.run(scenario()) == link.CLOSE_UNAUTHORIZED
