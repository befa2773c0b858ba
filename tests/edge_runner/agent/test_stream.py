"""The live stream's ring buffer: seq within an epoch, replay, overflow markers, batches."""

from __future__ import annotations

import json
import logging

from edge_runner.agent.stream import MAX_ITEM_BYTES, StreamBuffer, StreamLogHandler
from edge_runner.protocol import link


def fill(buffer: StreamBuffer, count: int) -> None:
    for n in range(count):
        buffer.add("debug", node="n1", msg=n)


def test_items_are_numbered_within_a_random_epoch() -> None:
    first, second = StreamBuffer(), StreamBuffer()
    assert first.epoch != second.epoch
    assert [first.add("debug", msg=i) for i in range(3)] == [1, 2, 3]
    items, overflow = first.since(1)
    assert [i["seq"] for i in items] == [2, 3]
    assert overflow is None
    assert all(i["kind"] == "debug" and isinstance(i["time"], float) for i in items)


def test_since_none_replays_nothing() -> None:
    buffer = StreamBuffer()
    fill(buffer, 5)
    assert buffer.since(None) == ([], None)
    assert list(buffer.batches(None)) == []


def test_asked_range_gone_gives_an_exact_overflow_marker() -> None:
    buffer = StreamBuffer(capacity=100)
    fill(buffer, 250)
    items, overflow = buffer.since(10)
    assert overflow == {"first_seq": 11, "last_seq": 150}
    assert [i["seq"] for i in items] == list(range(151, 251))
    # nothing missing, nothing duplicated: marker + items cover 11..250 exactly
    assert overflow["last_seq"] + 1 == items[0]["seq"]


def test_a_seq_from_an_earlier_epoch_replays_all_held_and_marks_the_rest() -> None:
    buffer = StreamBuffer(capacity=10)
    fill(buffer, 30)
    items, overflow = buffer.since(999)
    assert overflow == {"first_seq": 1, "last_seq": 20}
    assert [i["seq"] for i in items] == list(range(21, 31))


def test_batches_hold_at_most_max_stream_items_and_the_marker_rides_first() -> None:
    buffer = StreamBuffer()
    fill(buffer, link.STREAM_BUFFER + 700)
    batches = list(buffer.batches(0))
    assert all(len(b["items"]) <= link.MAX_STREAM_ITEMS for b in batches)
    assert batches[0]["overflow"] == {"first_seq": 1, "last_seq": 700}
    assert all("overflow" not in b for b in batches[1:])
    seqs = [i["seq"] for b in batches for i in b["items"]]
    assert seqs == list(range(701, link.STREAM_BUFFER + 701))
    for batch in batches:
        assert batch["type"] == link.STREAM
        assert batch["epoch"] == buffer.epoch
        assert len(link.encode(batch).encode()) <= link.MAX_FRAME_BYTES
        link.decode(link.encode(batch), allowed=link.DEVICE_TYPES)


def test_a_huge_item_is_cut_and_frames_stay_under_the_limit() -> None:
    buffer = StreamBuffer()
    for _ in range(300):
        buffer.add("debug", node="n1", msg="x" * 100_000)
    item = buffer.since(0)[0][0]
    assert item["truncated"] is True
    assert len(json.dumps(item).encode()) <= MAX_ITEM_BYTES
    for batch in buffer.batches(0):
        assert len(link.encode(batch).encode()) <= link.MAX_FRAME_BYTES


def test_comms_events_become_debug_and_status_items() -> None:
    buffer = StreamBuffer()
    buffer.feed_comms("debug", {"id": "d1", "msg": "hello", "format": "string[5]"})
    buffer.feed_comms("debug", {"id": "f1", "msg": "boom", "level": 20})
    buffer.feed_comms("status/m1", {"fill": "red", "shape": "ring", "text": "disconnected"})
    buffer.feed_comms("notification/runtime-state", {"state": "start"})
    items, _ = buffer.since(0)
    assert [(i["kind"], i["node"]) for i in items] == [
        ("debug", "d1"),
        ("debug", "f1"),
        ("status", "m1"),
    ]
    assert items[2]["status"]["text"] == "disconnected"


def test_log_records_become_log_items() -> None:
    buffer = StreamBuffer()
    logger = logging.getLogger("test.stream.log")
    handler = StreamLogHandler(buffer)
    logger.addHandler(handler)
    try:
        logger.warning("disk %s", "full")
        logger.debug("not below the handler's level")
    finally:
        logger.removeHandler(handler)
    items, _ = buffer.since(0)
    assert [(i["kind"], i["level"], i["message"]) for i in items] == [
        ("log", "warning", "disk full")
    ]


async def test_wait_wakes_on_a_new_item() -> None:
    buffer = StreamBuffer()
    assert await buffer.wait(0, 0.01) is False
    buffer.add("log", message="x")
    assert await buffer.wait(0, 5) is True
