"""The outbox (order, bound, restart, SIGKILL of a writer, a loop that never waits for the disk)
and the full-jitter backoff every retry in the runner uses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from edge_runner.lib import outbox as outbox_module
from edge_runner.lib.backoff import FLOOR, Backoff
from edge_runner.lib.outbox import Outbox, OutboxError
from tests.edge_runner.looplag import LoopLag

ROOT = Path(__file__).resolve().parents[2]


def text_outbox(path: Path, limit: int = 1000) -> Outbox[str]:
    return Outbox(path, limit, str.encode, bytes.decode)


async def opened(path: Path, limit: int = 1000) -> Outbox[str]:
    return await text_outbox(path, limit).open()


async def drain(box: Outbox[str], batch: int = 100) -> list[str]:
    """Everything waiting, oldest first, acknowledging as it goes."""
    await box.flush()
    out: list[str] = []
    while box.count:
        items = await box.peek_batch(batch)
        out.extend(item for _, item in items)
        box.ack(item_id for item_id, _ in items)
    return out


@pytest.mark.asyncio
async def test_items_come_out_in_order_only_once_durable_and_acks_remove_them(
    tmp_path: Path,
) -> None:
    box = await opened(tmp_path / "q.sqlite3")
    try:
        ids = [box.put(f"m{i}") for i in range(5)]
        assert ids == sorted(ids)
        assert box.count == 5
        await box.flush()
        assert box.durable_id == ids[-1]
        peeked = await box.peek_batch(3)
        assert peeked == list(zip(ids[:3], ["m0", "m1", "m2"], strict=True))
        assert await box.peek_batch(3) == peeked  # peeking removes nothing
        box.ack([ids[0], ids[1]])
        box.ack([ids[0]])  # a repeated ack changes nothing
        assert box.count == 3
        assert [item for _, item in await box.peek_batch(10)] == ["m2", "m3", "m4"]
        box.ack([ids[3]])  # out of order: the others stay, in order
        assert await drain(box) == ["m2", "m4"]
    finally:
        await box.close()
    box = await opened(tmp_path / "q.sqlite3")
    try:
        assert box.count == 0
        assert box.put("next") > ids[-1]  # ids are never reused
    finally:
        await box.close()


@pytest.mark.asyncio
async def test_overflow_drops_the_oldest_and_the_count_survives_a_restart(tmp_path: Path) -> None:
    box = await opened(tmp_path / "q.sqlite3", limit=5)
    for i in range(3):
        box.put(f"m{i}")
    await box.flush()  # some dropped items are on disk, some only in memory
    for i in range(3, 12):
        box.put(f"m{i}")
    assert (box.count, box.dropped) == (5, 7)
    await box.close()
    box = await opened(tmp_path / "q.sqlite3", limit=3)  # a lower limit drops at once
    try:
        assert (box.count, box.dropped) == (3, 9)
        assert await drain(box) == ["m9", "m10", "m11"]
    finally:
        await box.close()


@pytest.mark.asyncio
async def test_items_beyond_memory_are_read_back_from_disk_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "MEMORY_ITEMS", 10)
    box = await opened(tmp_path / "q.sqlite3", limit=10_000)
    for i in range(50):
        box.put(f"m{i}")
    assert await box.peek_batch(20) == []  # nothing is handed out before it is durable
    await box.flush()
    first = await box.peek_batch(20)  # 40 of them are only on disk now
    assert [item for _, item in first] == [f"m{i}" for i in range(20)]
    box.ack(item_id for item_id, _ in first[:5])
    await box.close()
    box = await opened(tmp_path / "q.sqlite3", limit=10_000)
    try:
        assert box.count == 45
        assert await drain(box, batch=7) == [f"m{i}" for i in range(5, 50)]
    finally:
        await box.close()


@pytest.mark.asyncio
async def test_bad_use_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        text_outbox(tmp_path / "q.sqlite3", limit=0)
    (tmp_path / "junk.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match="unusable"):
        await opened(tmp_path / "junk.sqlite3")
    box = await opened(tmp_path / "q.sqlite3")
    with pytest.raises(TypeError):
        box.put(17)  # type: ignore[arg-type]  # an item the codec cannot encode
    assert box.count == 0
    await box.close()
    await box.close()  # idempotent
    with pytest.raises(OutboxError, match="closed"):
        box.put("late")


@pytest.mark.asyncio
async def test_a_refused_write_is_retried_and_nothing_is_lost_or_reordered(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    box = await opened(path)
    try:
        box.put("m0")
        await box.flush()
        with sqlite3.connect(path) as db:  # the disk refuses every insert from now on
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON outbox "
                "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )
        db.close()
        for i in range(1, 6):
            box.put(f"m{i}")
        await asyncio.sleep(0.3)  # several failed commits, retried with backoff
        assert box.durable_id == 1
        assert [item for _, item in await box.peek_batch(10)] == ["m0"]  # only what is durable
        box.ack([1])
        box.put("m6")
        with sqlite3.connect(path) as db:
            db.execute("DROP TRIGGER refuse")
        db.close()
        assert await drain(box) == [f"m{i}" for i in range(1, 7)]
    finally:
        await box.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    db.close()


WRITER = """
import asyncio, sys
from pathlib import Path
from edge_runner.lib.outbox import Outbox

async def main() -> None:
    box = await Outbox(Path(sys.argv[1]), 1_000_000, str.encode, bytes.decode).open()
    n = 0
    while True:
        ids = [box.put(f"item-{n + i}") for i in range(50)]
        n += 50
        if n <= 5000 and n % 500 == 0:  # a consumer acknowledging the oldest items now and then
            box.ack(item_id for item_id, _ in await box.peek_batch(200))
        await box.flush()
        acked = box.count and (await box.peek_batch(1))[0][0] - 1
        print(ids[-1], acked, flush=True)  # everything up to ids[-1] is durable now

asyncio.run(main())
"""


@pytest.mark.asyncio
async def test_sigkill_of_a_writer_mid_stream_loses_no_durable_item(tmp_path: Path) -> None:
    """At least once: every item reported durable and not acknowledged is there after the
    kill, in order, each once; acknowledged ones may come back (their delete was pending)."""
    path = tmp_path / "q.sqlite3"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        str(path),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    reports: list[tuple[int, int]] = []
    assert proc.stdout is not None
    try:
        # killed well after the last acknowledgement, so the last report read tells exactly
        # what is acknowledged; the writer is still putting and committing
        while not reports or reports[-1][0] < 8000:
            line = await proc.stdout.readline()
            assert line, "the writer died before it was killed"
            durable, acked = map(int, line.split())
            reports.append((durable, acked))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        _, errors = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL, errors.decode()
    durable, acked = reports[-1]
    box = await opened(path, limit=1_000_000)
    try:
        await box.flush()
        items: list[tuple[int, str]] = []
        while batch := await box.peek_batch(5000):
            items.extend(batch)
            box.ack(item_id for item_id, _ in batch)
    finally:
        await box.close()
    ids = [item_id for item_id, _ in items]
    assert ids == sorted(set(ids))  # in order, no item twice
    assert all(item == f"item-{item_id - 1}" for item_id, item in items)
    assert set(range(acked + 1, durable + 1)) <= set(ids), "a durable item was lost"
    print(
        f"\nkill -9 writer: {durable} durable, {acked} acknowledged before the kill, "
        f"{len(ids)} found after reopen (ids {ids[0]}..{ids[-1]})"
    )


@pytest.mark.asyncio
async def test_putting_100k_items_never_blocks_the_loop(tmp_path: Path) -> None:
    box = await opened(tmp_path / "q.sqlite3", limit=200_000)
    payload = "x" * 100
    started = time.perf_counter()
    put_time = 0.0
    async with LoopLag() as lag:
        for _chunk in range(100):
            t0 = time.perf_counter()
            for _ in range(1000):
                box.put(payload)
            put_time += time.perf_counter() - t0
            await asyncio.sleep(0)  # a producer yields between messages, like the engine
        await box.flush()
        durable_after = time.perf_counter() - started
    try:
        assert box.count == 100_000
        assert box.durable_id == 100_000
    finally:
        await box.close()
    print(
        f"\noutbox put: {100_000 / put_time:,.0f} items/s on the loop "
        f"({put_time * 1e6 / 100_000:.1f} us each); all durable after {durable_after:.2f} s "
        f"({100_000 / durable_after:,.0f} items/s to disk); {lag}"
    )


def test_backoff_is_full_jitter_exponential_capped_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(7))
    windows, delays = [], []
    for _ in range(8):
        windows.append(backoff.window())
        delays.append(backoff.next_delay())
    assert windows == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(FLOOR <= d <= w for d, w in zip(delays, windows, strict=True))
    backoff.reset()
    assert backoff.window() == 0.5
    spread = Backoff(1.0, 1.0, random.Random(1))
    draws = [spread.next_delay() for _ in range(2000)]
    # full jitter: spread over the whole window, not clustered around its top
    assert min(draws) < 0.05
    assert max(draws) > 0.95
    assert 0.45 < sum(draws) / len(draws) < 0.55
    with pytest.raises(ValueError, match="positive"):
        Backoff(0, 1)
    print(f"\nbackoff 1 s window: mean {sum(draws) / len(draws):.3f} s")


def test_outbox_file_is_plain_sqlite(tmp_path: Path) -> None:
    """The file can be inspected with any SQLite tool (support, the tests below)."""

    async def write() -> None:
        box = await opened(tmp_path / "q.sqlite3")
        box.put("hello")
        await box.close()

    asyncio.run(write())
    with sqlite3.connect(tmp_path / "q.sqlite3") as db:
        assert db.execute("SELECT body FROM outbox").fetchall() == [(b"hello",)]
