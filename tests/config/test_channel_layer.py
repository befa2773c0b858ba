"""The SQLite channel layer: API contract in one process, and delivery across real processes."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from channels.exceptions import ChannelFull

from apps.core.channel_layers import SQLiteChannelLayer

# Outside `make test-fast`: delivery across real processes.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def layer(tmp_path: Path) -> SQLiteChannelLayer:
    return SQLiteChannelLayer(path=tmp_path / "channels.sqlite3", polling_interval=0.01)


def peer(db: Path, action: str, name: str, amount: int | float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.config.layer_peer", str(db), action, name, str(amount)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


async def test_send_then_receive_on_a_shared_channel(layer: SQLiteChannelLayer) -> None:
    await layer.send("jobs", {"type": "job", "n": 1, "blob": b"\x00\xff"})
    await layer.send("jobs", {"type": "job", "n": 2})
    first = await asyncio.wait_for(layer.receive("jobs"), 2)
    second = await asyncio.wait_for(layer.receive("jobs"), 2)
    assert first == {"type": "job", "n": 1, "blob": b"\x00\xff"}
    assert second["n"] == 2


async def test_group_send_reaches_members_and_not_discarded(layer: SQLiteChannelLayer) -> None:
    alice = await layer.new_channel()
    bob = await layer.new_channel()
    await layer.group_add("team-1", alice)
    await layer.group_add("team-1", bob)
    await layer.group_discard("team-1", bob)
    await layer.group_send("team-1", {"type": "team.event", "kind": "x"})
    assert (await asyncio.wait_for(layer.receive(alice), 2))["kind"] == "x"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(bob), 0.3)


async def test_send_past_capacity_raises_and_group_send_drops(tmp_path: Path) -> None:
    layer = SQLiteChannelLayer(path=tmp_path / "c.sqlite3", capacity=3, polling_interval=0.01)
    for number in range(3):
        await layer.send("jobs", {"type": "job", "n": number})
    with pytest.raises(ChannelFull):
        await layer.send("jobs", {"type": "job", "n": 3})
    await layer.group_add("crowd", "jobs")
    await layer.group_send("crowd", {"type": "job", "n": 4})  # dropped silently, like Redis
    received = [(await asyncio.wait_for(layer.receive("jobs"), 2))["n"] for _ in range(3)]
    assert received == [0, 1, 2]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive("jobs"), 0.3)


async def test_messages_and_memberships_expire(tmp_path: Path) -> None:
    layer = SQLiteChannelLayer(
        path=tmp_path / "c.sqlite3", expiry=0.2, group_expiry=0.2, polling_interval=0.01
    )
    await layer.send("jobs", {"type": "old"})
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await asyncio.sleep(0.3)
    await layer.group_send("g", {"type": "late"})
    await layer.send("jobs", {"type": "new"})
    assert (await asyncio.wait_for(layer.receive("jobs"), 2))["type"] == "new"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.3)


async def test_flush_forgets_messages_and_groups(layer: SQLiteChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.send("jobs", {"type": "job"})
    await layer.flush()
    await layer.group_send("g", {"type": "after"})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive("jobs"), 0.2)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.2)


@pytest.mark.parametrize("bad", ["", "has space", "x" * 120, "ünïcode"])
async def test_invalid_names_are_refused(layer: SQLiteChannelLayer, bad: str) -> None:
    with pytest.raises(TypeError):
        await layer.send(bad, {"type": "x"})
    with pytest.raises(TypeError):
        await layer.group_add(bad, "valid")
    with pytest.raises(TypeError):
        await layer.group_send(bad, {"type": "x"})


async def test_non_dict_messages_are_refused_and_nothing_is_stored(
    layer: SQLiteChannelLayer,
) -> None:
    with pytest.raises(TypeError, match="must be a dict"):
        await layer.send("jobs", ["not", "a", "dict"])  # type: ignore[arg-type]  # bad input
    await layer.send("jobs", {"type": "ok"})
    assert (await asyncio.wait_for(layer.receive("jobs"), 2))["type"] == "ok"


async def test_another_process_specific_channel_cannot_be_received(
    layer: SQLiteChannelLayer,
) -> None:
    with pytest.raises(RuntimeError, match="another process"):
        await layer.receive("asgi.specific.0000000000000000!abc")


async def test_group_send_from_another_process_arrives(layer: SQLiteChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.group_add("team-7", channel)
    sender = peer(layer.path, "send-group", "team-7", 50)
    latencies = []
    numbers = []
    for _ in range(50):
        message = await asyncio.wait_for(layer.receive(channel), 15)
        latencies.append(time.time() - message["t"])
        numbers.append(message["n"])
    sender.communicate(timeout=15)
    assert sender.returncode == 0
    assert numbers == list(range(50)), "order and completeness across processes"
    median_ms = statistics.median(latencies) * 1000
    print(
        f"cross-process group_send: 50/50 delivered, median {median_ms:.1f} ms,"
        f" max {max(latencies) * 1000:.1f} ms"
    )


def test_competing_receivers_in_two_processes_get_each_message_once(tmp_path: Path) -> None:
    db = tmp_path / "channels.sqlite3"
    receivers = [peer(db, "receive", "work", 4) for _ in range(2)]
    time.sleep(0.5)  # let both start polling, so the split is a real race
    sender = peer(db, "send", "work", 200)
    full, _ = sender.communicate(timeout=20)
    assert sender.returncode == 0
    assert full == "", "capacity 1000 is never reached here"
    seen: list[int] = []
    for receiver in receivers:
        out, _ = receiver.communicate(timeout=30)
        assert receiver.returncode == 0
        seen.extend(json.loads(line)["n"] for line in out.splitlines())
    assert sorted(seen) == list(range(200)), "every message exactly once across two processes"


async def test_group_send_fans_out_to_many_sockets_in_one_poll(layer: SQLiteChannelLayer) -> None:
    channels = [await layer.new_channel() for _ in range(300)]
    for channel in channels:
        await layer.group_add("crowd", channel)
    started = time.monotonic()
    await layer.group_send("crowd", {"type": "team.event", "kind": "fan-out"})
    sent = time.monotonic() - started
    received = await asyncio.wait_for(
        asyncio.gather(*(layer.receive(channel) for channel in channels)), 10
    )
    took = time.monotonic() - started
    assert [message["kind"] for message in received] == ["fan-out"] * 300
    print(
        f"group_send to 300 members: stored in {sent * 1000:.0f} ms,"
        f" all received in {took * 1000:.0f} ms"
    )


async def test_a_reply_channel_of_another_event_loop_of_the_process_gets_its_messages(
    layer: SQLiteChannelLayer,
) -> None:
    """A server's loop polls the process's mailbox; a thread's loop (async_to_sync beside it)
    made a reply channel: the server's poller hands the message over instead of dropping it,
    once, and the reply channel can be discarded after use."""
    mine = await layer.new_channel()
    listening = asyncio.get_running_loop().create_task(layer.receive(mine))
    await asyncio.sleep(0.05)  # this loop's poller runs

    def other_loop() -> dict[str, Any]:
        async def wait_reply() -> dict[str, Any]:
            reply_to = await layer.new_channel()
            await layer.send(reply_to, {"type": "reply", "n": 1})
            # Only the first loop's poller may run for a while: it must hand the row over.
            await asyncio.sleep(0.2)
            try:
                return await asyncio.wait_for(layer.receive(reply_to), 2)
            finally:
                await layer.discard_channel(reply_to)

        return asyncio.run(wait_reply())

    assert await asyncio.to_thread(other_loop) == {"type": "reply", "n": 1}
    await layer.send(mine, {"type": "still", "n": 2})
    assert await asyncio.wait_for(listening, 2) == {"type": "still", "n": 2}
