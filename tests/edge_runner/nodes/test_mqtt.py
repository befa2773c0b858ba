"""mqtt-broker / mqtt in / mqtt out against the real Mosquitto on 127.0.0.1:1883 (unique
topics per test) and, for outages, a private Mosquitto on a free port."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge_runner.connections import mqtt
from edge_runner.lib.outbox import Outbox
from edge_runner.nodes.mqtt_out import MqttOutNode
from edge_runner.runtime.engine import DeployError, Engine
from edge_runner.runtime.paths import RunnerPaths
from edge_runner.testing import FlowHarness
from tests.edge_runner.connections.peers import Mosquitto, Subscriber, free_port
from tests.edge_runner.sqlite_files import sqlite_file, table_names

# Outside `make test-fast`: the real Mosquitto.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]
SHARED_PORT = 1883


@pytest.fixture
def runner_paths(tmp_path: Path) -> RunnerPaths:
    return RunnerPaths(tmp_path / "runner")


@pytest.fixture
def base() -> str:
    return f"manifold-test/{uuid.uuid4().hex[:12]}"


def broker(port: int = SHARED_PORT, **extra: Any) -> dict[str, Any]:
    return {
        "id": "bk",
        "type": "mqtt-broker",
        "broker": "127.0.0.1",
        "port": str(port),
        "clientid": "",
        "keepalive": "60",
        "cleansession": True,
        "protocolVersion": "4",
        "birthTopic": "",
        "closeTopic": "",
        "willTopic": "",
        "reconnectPeriod": "100",
        "reconnectMaxPeriod": "300",
        **extra,
    }


def mqtt_in(topic: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "in",
        "type": "mqtt in",
        "topic": topic,
        "qos": "1",
        "datatype": "auto-detect",
        "broker": "bk",
        "nl": False,
        "rap": True,
        "rh": 0,
        "inputs": 0,
        "wires": [["cap"]],
        **extra,
    }


def mqtt_out(topic: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "id": "out",
        "type": "mqtt out",
        "topic": topic,
        "qos": "1",
        "retain": "",
        "respTopic": "",
        "contentType": "",
        "userProps": "",
        "correlationData": "",
        "expiry": "",
        "broker": "bk",
        "wires": [],
        **extra,
    }


CAP = {"id": "cap", "type": "helper"}


def queue_of(h: FlowHarness) -> Outbox[mqtt.Outgoing]:
    node = h.node("out")
    assert isinstance(node, MqttOutNode)
    assert node.queue is not None
    return node.queue


async def connected(h: FlowHarness, node_id: str = "bk") -> None:
    await h.until(
        lambda: any(s.get("text") == "connected" for s in h.statuses(node_id)),
        5,
        f"{node_id} connected",
    )


async def publish(topic: str, payload: bytes | str, port: int = SHARED_PORT, **kw: Any) -> None:
    async with aiomqtt.Client("127.0.0.1", port, **kw.pop("client", {})) as client:
        await client.publish(topic, payload, qos=1, **kw)


async def test_mqtt_in_receives_with_wildcards_and_auto_detects_json(base: str) -> None:
    async with FlowHarness([broker(), mqtt_in(f"{base}/+/temp"), CAP]) as h:
        await connected(h, "in")
        await publish(f"{base}/m1/temp", json.dumps({"v": 21.5}))
        await publish(f"{base}/m2/temp", "warm")
        await publish(f"{base}/m2/other", "ignored")
        await publish(f"{base}/m3/temp", b"\xff\x00")
        msgs = await h.wait("cap", 3)
        assert [m["topic"] for m in msgs] == [
            f"{base}/m1/temp",
            f"{base}/m2/temp",
            f"{base}/m3/temp",
        ]
        assert msgs[0]["payload"] == {"v": 21.5}
        assert msgs[1]["payload"] == "warm"
        assert msgs[2]["payload"] == b"\xff\x00"
        assert msgs[0]["qos"] == 1
        assert msgs[0]["retain"] is False
        await h.quiet(0.1)
        assert len(h.messages["cap"]) == 3


@pytest.mark.parametrize(
    ("datatype", "sent", "expected"),
    [
        ("utf8", b'{"a":1}', '{"a":1}'),
        ("buffer", b"abc", b"abc"),
        ("json", b"[1,2]", [1, 2]),
        ("base64", b"hi", "aGk="),
    ],
)
async def test_mqtt_in_datatypes(base: str, datatype: str, sent: bytes, expected: Any) -> None:
    async with FlowHarness([broker(), mqtt_in(f"{base}/x", datatype=datatype), CAP]) as h:
        await connected(h, "in")
        await publish(f"{base}/x", sent)
        assert (await h.wait("cap"))[0]["payload"] == expected


async def test_mqtt_in_json_that_does_not_parse_is_a_catchable_error(base: str) -> None:
    flow = [
        broker(),
        mqtt_in(f"{base}/j", datatype="json"),
        {"id": "catch", "type": "catch", "scope": None, "wires": [["caught"]]},
        {"id": "caught", "type": "helper"},
        CAP,
    ]
    async with FlowHarness(flow) as h:
        await connected(h, "in")
        await publish(f"{base}/j", b"{nope")
        (caught,) = await h.wait("caught")
        assert "Failed to parse JSON" in caught["error"]["message"]
        assert "cap" not in h.messages


async def test_mqtt_out_publishes_payload_types_topic_from_msg_and_retain(base: str) -> None:
    sub = Subscriber(SHARED_PORT, f"{base}/#")
    await sub.start()
    try:
        async with FlowHarness([broker(), mqtt_out()]) as h:
            await connected(h, "out")
            h.receive("out", {"topic": f"{base}/a", "payload": {"x": [1, 2]}})
            h.receive("out", {"topic": f"{base}/b", "payload": 2.0})
            h.receive("out", {"topic": f"{base}/c", "payload": True, "retain": True})
            h.receive("out", {"topic": f"{base}/d", "payload": b"\x01\x02"})
            payloads = await sub.wait(4)
            assert payloads == [b'{"x":[1,2]}', b"2", b"true", b"\x01\x02"]
            assert [m.topic.value for m in sub.messages] == [f"{base}/{t}" for t in "abcd"]
    finally:
        await sub.stop()
    late = Subscriber(SHARED_PORT, f"{base}/c")
    await late.start()
    try:
        assert await late.wait(1) == [b"true"]  # the retained message
        assert late.messages[0].retain
    finally:
        await late.stop()
        await publish(f"{base}/c", b"", retain=True)  # clear the retained message


async def test_mqtt5_properties_round_trip(base: str) -> None:
    flow = [
        broker(protocolVersion="5"),
        mqtt_in(f"{base}/v5"),
        mqtt_out(f"{base}/v5", contentType="application/json", expiry="60"),
        CAP,
    ]
    async with FlowHarness(flow) as h:
        await connected(h, "in")
        h.receive(
            "out",
            {
                "payload": {"ok": 1},
                "responseTopic": f"{base}/reply",
                "correlationData": b"c-42",
                "userProperties": {"line": "7"},
            },
        )
        (msg,) = await h.wait("cap")
        assert msg["payload"] == {"ok": 1}
        assert msg["contentType"] == "application/json"
        assert msg["responseTopic"] == f"{base}/reply"
        assert msg["correlationData"] == b"c-42"
        assert msg["userProperties"] == {"line": "7"}
        assert 0 < msg["messageExpiryInterval"] <= 60


async def test_dynamic_subscriptions(base: str) -> None:
    flow = [broker(), mqtt_in("", inputs=1, topicType="dynamic"), CAP]
    async with FlowHarness(flow) as h:
        await connected(h, "in")
        h.receive(
            "in",
            {"action": "subscribe", "topic": [f"{base}/one", {"topic": f"{base}/two", "qos": 0}]},
        )
        h.receive("in", {"action": "getSubscriptions"})
        (subs,) = await h.wait("cap")
        assert subs["payload"] == [
            {"topic": f"{base}/one", "qos": 1},
            {"topic": f"{base}/two", "qos": 0},
        ]
        await publish(f"{base}/two", "2")
        assert (await h.wait("cap", 2))[1]["payload"] == 2
        h.receive("in", {"action": "unsubscribe", "topic": f"{base}/two"})
        await h.quiet(0.2)
        await publish(f"{base}/two", "ignored")
        await publish(f"{base}/one", "1")
        msgs = await h.wait("cap", 3)
        await h.quiet(0.1)
        assert [m["payload"] for m in h.messages["cap"][1:]] == [2, 1]
        assert msgs[2]["topic"] == f"{base}/one"


async def test_bad_input_is_rejected_clearly(base: str) -> None:
    flow = [
        broker(),
        mqtt_out(qos=""),
        {"id": "catch", "type": "catch", "scope": None, "wires": [["caught"]]},
        {"id": "caught", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("out", {"payload": 1})
        h.receive("out", {"payload": 1, "topic": f"{base}/+"})
        h.receive("out", {"payload": 1, "topic": f"{base}/q", "qos": 7})
        caught = await h.wait("caught", 3)
        texts = [c["error"]["message"] for c in caught]
        assert "no topic" in texts[0]
        assert "'+' and '#' are not allowed" in texts[1]
        assert "QoS must be 0, 1 or 2" in texts[2]
        assert queue_of(h).count == 0  # nothing stored
    for bad, needle in [
        ({"topic": "a/#/b"}, "'#' must be a whole, last level"),
        ({"topic": ""}, "topic is empty"),
        ({"qos": "3"}, "QoS must be"),
    ]:
        with pytest.raises(DeployError) as info:
            await Engine().deploy(
                [
                    {"id": "t1", "type": "tab"},
                    {**broker(), "z": "t1"},
                    {**mqtt_in("ok/topic"), **bad, "z": "t1", "wires": []},
                ]
            )
        assert needle in str(info.value)


async def test_broker_nodes_for_one_endpoint_share_one_connection(base: str) -> None:
    flow = [
        broker(clientid=f"c-{base[-12:]}"),
        {**broker(clientid=f"c-{base[-12:]}"), "id": "bk2"},
        mqtt_in(f"{base}/s"),
        mqtt_out(f"{base}/s", broker="bk2"),
        CAP,
    ]
    async with FlowHarness(flow) as h:
        await connected(h, "in")
        assert h.node("bk").connection is h.node("bk2").connection  # type: ignore[attr-defined]  # Node base type; the config node defines it
        pool = mqtt.pool_of(h.engine.services)
        assert len(pool) == 1
        h.receive("out", {"payload": "loop"})
        assert (await h.wait("cap"))[0]["payload"] == "loop"
    assert len(pool) == 0


async def test_birth_and_close_messages(base: str) -> None:
    sub = Subscriber(SHARED_PORT, f"{base}/status")
    await sub.start()
    try:
        flow = [
            broker(
                birthTopic=f"{base}/status",
                birthPayload="online",
                closeTopic=f"{base}/status",
                closePayload="offline",
                willTopic=f"{base}/status",
                willPayload="lost",
            )
        ]
        async with FlowHarness(flow) as h:
            await connected(h)
            await sub.wait(1)
        assert await sub.wait(2) == [b"online", b"offline"]
    finally:
        await sub.stop()


# ---------------------------------------------------------------- outages (private broker)


@pytest.fixture
async def private_broker(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    broker_proc = Mosquitto(free_port(), persist_dir=tmp_path / "mosquitto")
    broker_proc.start()
    yield broker_proc
    broker_proc.stop()


def status_texts(h: FlowHarness, node_id: str) -> list[str]:
    return [s.get("text", "") for s in h.statuses(node_id)]


async def test_outage_queues_on_disk_and_forwards_in_order(
    private_broker: Mosquitto, base: str
) -> None:
    sub = Subscriber(private_broker.port, f"{base}/q", client_id=f"sub-{base[-12:]}")
    await sub.start()
    try:
        async with FlowHarness([broker(private_broker.port), mqtt_out(f"{base}/q")]) as h:
            await connected(h, "out")
            for i in range(5):
                h.receive("out", {"payload": f"m{i}"})
            await sub.wait(5)
            private_broker.stop(graceful=True)
            await h.until(lambda: "unavailable" in status_texts(h, "out"), 5, "unavailable")
            for i in range(5, 25):
                h.receive("out", {"payload": f"m{i}"})
            await h.until(
                lambda: queue_of(h).count == 20,
                3,
                "20 queued",
            )
            assert status_texts(h, "out")[-1] == "unavailable, queued 20 (dropped 0)"
            private_broker.start()
            payloads = await sub.wait_distinct(25, within=10)
            assert payloads == [f"m{i}".encode() for i in range(25)]  # in order, none lost
            await h.until(lambda: status_texts(h, "out")[-1] == "connected", 3, "drained")
            assert status_texts(h, "bk").count("unavailable") == 1
    finally:
        await sub.stop()


async def test_queue_survives_a_runner_restart(
    private_broker: Mosquitto, base: str, runner_paths: RunnerPaths
) -> None:
    sub = Subscriber(private_broker.port, f"{base}/r", client_id=f"sub-{base[-12:]}")
    await sub.start()
    private_broker.stop(graceful=True)
    flow = [broker(private_broker.port), mqtt_out(f"{base}/r")]
    async with FlowHarness(flow, paths=runner_paths) as h:
        for i in range(10):
            h.receive("out", {"payload": i})
        await h.until(
            lambda: queue_of(h).count == 10,
            3,
            "10 queued",
        )
    assert (runner_paths.root / "outbox" / "mqtt-queue" / "out.sqlite3").exists()
    try:
        async with FlowHarness(
            flow, paths=runner_paths
        ) as h:  # a new engine: the "restarted" runner
            assert queue_of(h).count == 10
            private_broker.start()
            payloads = await sub.wait_distinct(10, within=10)
            assert payloads == [str(i).encode() for i in range(10)]
            await h.until(
                lambda: queue_of(h).count == 0,
                3,
                "drained",
            )
    finally:
        await sub.stop()


async def test_overflow_drops_the_oldest_and_counts(private_broker: Mosquitto, base: str) -> None:
    sub = Subscriber(private_broker.port, f"{base}/o", client_id=f"sub-{base[-12:]}")
    await sub.start()
    private_broker.stop(graceful=True)
    try:
        async with FlowHarness(
            [broker(private_broker.port), mqtt_out(f"{base}/o", queueLimit=5)]
        ) as h:
            for i in range(8):
                h.receive("out", {"payload": i})
            await h.until(
                lambda: queue_of(h).dropped == 3,
                3,
                "3 dropped",
            )
            assert status_texts(h, "out")[-1] == "unavailable, queued 5 (dropped 3)"
            private_broker.start()
            assert await sub.wait_distinct(5, within=10) == [str(i).encode() for i in range(3, 8)]
    finally:
        await sub.stop()


async def test_a_queue_left_by_a_runner_before_the_outbox_is_sent_first(
    base: str, runner_paths: RunnerPaths
) -> None:
    path = sqlite_file(  # the schema of the DiskQueue the outbox replaced
        runner_paths.mqtt_queue / "out.sqlite3",
        "CREATE TABLE queue (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
        "payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, "
        "props TEXT NOT NULL)",
        "INSERT INTO queue (topic, payload, qos, retain, props) VALUES (?, ?, 1, 0, '{}')",
        [(f"{base}/old", b"old-1"), (f"{base}/old", b"old-2")],
    )
    sub = Subscriber(SHARED_PORT, f"{base}/old")
    await sub.start()
    try:
        async with FlowHarness([broker(), mqtt_out(f"{base}/old")], paths=runner_paths) as h:
            h.receive("out", {"payload": "new"})
            assert await sub.wait_distinct(3) == [b"old-1", b"old-2", b"new"]
    finally:
        await sub.stop()
    assert "queue" not in table_names(path)
