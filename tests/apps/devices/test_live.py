"""Live debug: a runner's stream reaches the browsers watching it, with no silent gap.

A scripted runner keeps every item (its ring buffer holds the whole run) and replays after a
``since`` as the agent does; the browser socket is forced to reconnect five times (family 14).
Runs on the Redis channel layer too when MANIFOLD_REDIS_URL is set.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import pytest
from django.test import Client
from websockets.asyncio.client import ClientConnection, connect

from apps.accounts.principal import Principal
from apps.devices.models import Device
from apps.teams.models import Membership
from apps.teams.services import application_override_set
from tests.apps.devices.linkworld import Registered, Runner, register, server
from tests.conftest import Acme

pytestmark = [pytest.mark.django_db(transaction=True)]
__all__ = ["server"]
TOTAL = 5000
RECONNECTS = 5


def cookie_of(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def watch(
    base: str, device: Device, cookie: str | None, query: str = "", slug: str = "acme"
) -> ClientConnection:
    headers = {"Origin": base.replace("ws://", "http://")}
    if cookie:
        headers["Cookie"] = cookie
    url = f"{base}/ws/teams/{slug}/devices/{device.pk}/live/{query}"
    return await connect(url, additional_headers=headers, open_timeout=10, ping_interval=None)


class StreamingRunner:
    """The agent's stream side: numbered items in a buffer, sent only while watched, replayed
    from ``since``."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.items: list[dict[str, Any]] = []
        self.cursor = 0  # index of the next item to send
        self.watching = asyncio.Event()
        self.watch_frames: list[dict[str, Any]] = []

    async def control(self) -> None:
        while True:
            frame = await self.runner.recv(within=120)
            if frame["type"] != "watch":
                continue
            self.watch_frames.append(frame)
            if frame["on"]:
                if "since" in frame:
                    self.cursor = min(frame["since"], len(self.items))
                elif not self.watching.is_set():
                    self.cursor = len(self.items)
                self.watching.set()
            else:
                self.watching.clear()
            await self.flush()

    async def flush(self) -> None:
        while self.watching.is_set() and self.cursor < len(self.items):
            batch = self.items[self.cursor : self.cursor + 200]
            self.cursor += len(batch)
            now = time.time()
            for item in batch:
                item.setdefault("sent", now)
            await self.runner.send({"type": "stream", "epoch": "ep1", "items": batch})

    async def produce(self, total: int) -> None:
        await self.watching.wait()
        for seq in range(1, total + 1):
            self.items.append({"seq": seq, "kind": "debug", "time": time.time(), "msg": seq})
            # 1000 items/s in 20 frames/s, as the agent batches (the link allows 50 frames/s).
            if seq % 50 == 0:
                await self.flush()
                await asyncio.sleep(0.05)
        await self.flush()


def test_a_stream_survives_five_browser_reconnects_without_a_silent_gap(
    acme_world: Acme, server: str
) -> None:
    press: Registered = register(acme_world.line_1, "press-1")
    cookie = cookie_of(acme_world.vera)

    async def scenario() -> dict[str, Any]:
        runner, _ = await Runner.join(server, press.credential)
        device = StreamingRunner(runner)
        control = asyncio.create_task(device.control())
        producing = asyncio.create_task(device.produce(TOTAL))
        seen: set[int] = set()
        covered: set[int] = set()
        silent: list[tuple[int, int]] = []
        latencies: list[float] = []
        last: int | None = None
        reconnects = 0
        socket = await watch(server, press.device, cookie)
        deadline = time.monotonic() + 120
        while (last or 0) < TOTAL and time.monotonic() < deadline:
            try:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
            except TimeoutError:
                break
            if frame["kind"] == "gap":
                covered.update(range(frame["from_seq"], frame["to_seq"] + 1))
                last = frame["to_seq"]
                continue
            if frame["kind"] != "stream":
                continue
            now = time.time()
            for item in frame["items"]:
                seq = item["seq"]
                if last is not None and seq > last + 1:
                    silent.append((last + 1, seq - 1))
                seen.add(seq)
                latencies.append(now - item["sent"])
                last = seq
            threshold = (reconnects + 1) * TOTAL // (RECONNECTS + 1)
            if reconnects < RECONNECTS and last is not None and last >= threshold:
                await socket.close()
                reconnects += 1
                await asyncio.sleep(0.05)
                socket = await watch(server, press.device, cookie, f"?epoch=ep1&since={last}")
        await socket.close()
        producing.cancel()
        control.cancel()
        await runner.socket.close()
        return {
            "seen": seen,
            "covered": covered,
            "silent": silent,
            "latencies": latencies,
            "reconnects": reconnects,
            "watch_frames": device.watch_frames,
        }

    result = asyncio.run(scenario())
    missing = set(range(1, TOTAL + 1)) - result["seen"] - result["covered"]
    latencies = sorted(result["latencies"])
    print(
        f"live stream: {len(result['seen'])}/{TOTAL} items delivered, "
        f"{len(result['covered'])} shown as gap markers, {len(missing)} silently missing, "
        f"{result['reconnects']} browser reconnects; runner->browser latency "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms"
    )
    assert result["reconnects"] == RECONNECTS
    assert result["silent"] == []
    assert missing == set()
    # Every reconnect asked the runner to replay from what the browser had.
    assert sum(1 for f in result["watch_frames"] if f["on"] and "since" in f) >= RECONNECTS


def test_the_browser_sees_state_changes_and_a_gap_marker_for_an_overflow(
    acme_world: Acme, server: str
) -> None:
    press = register(acme_world.line_1, "press-1")
    cookie = cookie_of(acme_world.vera)

    async def scenario() -> list[dict[str, Any]]:
        runner, _ = await Runner.join(server, press.credential)
        socket = await watch(server, press.device, cookie)
        await runner.expect("watch")
        await runner.heartbeat("error")
        # The "online" change the hello wrote may reach the watcher first (it is recorded after
        # the welcome); the heartbeat's change is the one this test is about.
        frames = [json.loads(await asyncio.wait_for(socket.recv(), 5))]
        while frames[0]["kind"] == "state" and frames[0]["device"]["status"] == "online":
            frames = [json.loads(await asyncio.wait_for(socket.recv(), 5))]
        await runner.send({"type": "stream", "epoch": "e", "items": [{"seq": 1, "kind": "log"}]})
        await runner.send(
            {
                "type": "stream",
                "epoch": "e",
                "items": [{"seq": 40, "kind": "log"}],
                "overflow": {"first_seq": 2, "last_seq": 30},
            }
        )
        for _ in range(4):
            frames.append(json.loads(await asyncio.wait_for(socket.recv(), 5)))
        await socket.close()
        await runner.socket.close()
        return frames

    state, first, overflow, lost, last = asyncio.run(scenario())
    assert state["kind"] == "state"
    assert state["device"]["status"] == "error"
    assert first == {"kind": "stream", "epoch": "e", "items": [{"seq": 1, "kind": "log"}]}
    assert overflow == {"kind": "gap", "missing": 29, "from_seq": 2, "to_seq": 30}
    assert lost == {"kind": "gap", "missing": 9, "from_seq": 31, "to_seq": 39}
    assert last["items"] == [{"seq": 40, "kind": "log"}]


@pytest.mark.parametrize(("who", "slug", "code"), [
    (None, "acme", 4403), ("oscar", "globex", 4404), ("oscar", "acme", 4404),
])  # fmt: skip
def test_only_members_who_may_see_the_device_watch_it(
    acme_world: Acme, globex_world: Any, server: str, who: str | None, slug: str, code: int
) -> None:
    press = register(acme_world.line_1, "press-1")
    cookie = cookie_of(globex_world.oscar) if who else None

    async def refused() -> int | None:
        socket = await watch(server, press.device, cookie, slug=slug)
        await asyncio.wait_for(socket.wait_closed(), 5)
        return socket.close_code

    assert asyncio.run(refused()) == code


def test_a_member_with_no_access_to_the_application_cannot_watch(
    acme_world: Acme, server: str
) -> None:
    press = register(acme_world.line_1, "press-1")
    application_override_set(
        principal=Principal.for_user(acme_world.olivia),
        membership=Membership.objects.get(team=acme_world.team, user=acme_world.vera),
        application=acme_world.line_1,
        role="none",
    )
    cookie = cookie_of(acme_world.vera)

    async def refused() -> int | None:
        socket = await watch(server, press.device, cookie)
        await asyncio.wait_for(socket.wait_closed(), 5)
        return socket.close_code

    assert asyncio.run(refused()) == 4404
