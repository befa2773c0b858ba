"""The inject node: props and legacy fields, the button with user props, once/repeat/cron."""

import asyncio
import math
import time
from typing import Any

import pytest
from pydantic import ValidationError

from edge_runner.nodes.inject import Config, InjectNode, effective_props
from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness


def flow(**config: Any) -> list[dict[str, Any]]:
    node = {
        "id": "n1",
        "type": "inject",
        "name": "",
        "repeat": "",
        "crontab": "",
        "once": False,
        "onceDelay": 0.1,
        "wires": [["out"]],
    }
    node.update(config)
    return [node, {"id": "out", "type": "helper"}]


def press(h: FlowHarness, body: dict[str, Any] | None = None) -> None:
    """What POST /inject/n1 does: an empty message, or the posted body with user props."""
    h.receive("n1", dict(body or {}))


async def test_legacy_fields_give_payload_and_topic() -> None:
    async with FlowHarness(flow(payload="10", payloadType="num", topic="t1")) as h:
        press(h)
        (msg,) = await h.wait("out")
    assert msg["payload"] == 10
    assert msg["topic"] == "t1"
    assert msg["_msgid"]


async def test_editor_props_read_payload_and_topic_fields() -> None:
    props = [{"p": "payload"}, {"p": "topic", "vt": "str"}, {"p": "k", "v": "200", "vt": "num"}]
    async with FlowHarness(
        flow(props=props, payload='{"a":1}', payloadType="json", topic="tp")
    ) as h:
        press(h)
        (msg,) = await h.wait("out")
    assert msg["payload"] == {"a": 1}
    assert msg["topic"] == "tp"
    assert msg["k"] == 200


async def test_date_payload_is_epoch_milliseconds() -> None:
    before = int(time.time() * 1000)
    async with FlowHarness(flow(payload="", payloadType="date")) as h:
        press(h)
        (msg,) = await h.wait("out")
    assert before <= msg["payload"] <= int(time.time() * 1000) + 1


async def test_user_inject_props_replace_the_configured_props() -> None:
    body = {
        "__user_inject_props__": [
            {"p": "topic", "v": "t_override", "vt": "str"},
            {"p": "num1", "v": "1", "vt": "num"},
            {"p": "nan", "v": "NaN", "vt": "num"},
            {"p": "bool1", "v": "true", "vt": "bool"},
            {"p": "obj", "v": '{"x":[1,2]}', "vt": "json"},
            {"p": "expr", "v": '"A" & "B"', "vt": "jsonata"},
            {"p": "buf", "v": "[1,2,255]", "vt": "bin"},
            {"p": "deep.a.b", "v": "x", "vt": "str"},
        ]
    }
    async with FlowHarness(flow(payload="hello", payloadType="str", topic="t4")) as h:
        press(h, body)
        (msg,) = await h.wait("out")
    assert "payload" not in msg
    assert "__user_inject_props__" not in msg
    assert msg["topic"] == "t_override"
    assert msg["num1"] == 1
    assert math.isnan(msg["nan"])
    assert msg["bool1"] is True
    assert msg["obj"] == {"x": [1, 2]}
    assert msg["buf"] == b"\x01\x02\xff"
    assert msg["expr"] == "AB"
    assert msg["deep"] == {"a": {"b": "x"}}


async def test_env_flow_and_global_props() -> None:
    props = [
        {"p": "e", "v": "INJECT_TEST_VAR", "vt": "env"},
        {"p": "f", "v": "fk", "vt": "flow"},
        {"p": "g", "v": "gk", "vt": "global"},
    ]
    async with FlowHarness(flow(props=props), env={"INJECT_TEST_VAR": "from-env"}) as h:
        rt = h.engine.nodes["n1"]
        rt.flow.set("fk", 5)
        rt.global_.set("gk", [1])
        press(h)
        (msg,) = await h.wait("out")
    assert (msg["e"], msg["f"], msg["g"]) == ("from-env", 5, [1])


async def test_bad_json_prop_fails_the_message_and_sends_nothing() -> None:
    props = [{"p": "payload", "v": "{not json", "vt": "json"}]
    async with FlowHarness(flow(props=props)) as h:
        press(h)
        await h.quiet(0.05)
        errors = h.logs(20)
    assert "out" not in h.messages
    assert errors
    assert "JSON" in errors[0]["msg"]


@pytest.mark.slow  # waits on the wall clock: outside `make test-fast`
async def test_once_fires_after_the_delay_and_only_once() -> None:
    t0 = time.monotonic()
    async with FlowHarness(flow(once=True, onceDelay=0.2, payload="x", payloadType="str")) as h:
        await h.wait("out")
        await h.quiet(0.3)
        fired_at = h.times["out"][0] - t0
    assert len(h.messages["out"]) == 1
    assert 0.18 <= fired_at < 0.6


@pytest.mark.slow  # waits on the wall clock: outside `make test-fast`
async def test_repeat_sends_at_the_interval_and_stops_on_redeploy() -> None:
    async with FlowHarness(flow(repeat="0.05", payload="r", payloadType="str")) as h:
        await h.wait("out", 4, timeout=2)
        await h.engine.deploy([{"id": "t1", "type": "tab"}])
        count = len(h.messages["out"])
        await h.quiet(0.2)
        assert len(h.messages["out"]) == count
    gaps = [b - a for a, b in zip(h.times["out"], h.times["out"][1:], strict=False)]
    assert all(0.02 < g < 0.15 for g in gaps[:3]), gaps


async def test_once_then_repeat() -> None:
    async with FlowHarness(
        flow(once=True, onceDelay=0.05, repeat="0.1", payload="r", payloadType="str")
    ) as h:
        await h.wait("out", 3, timeout=2)
    assert h.times["out"][1] - h.times["out"][0] > 0.05


@pytest.mark.slow  # waits on the wall clock: outside `make test-fast`
async def test_crontab_with_seconds_fires_every_second() -> None:
    async with FlowHarness(flow(crontab="* * * * * *", payload="c", payloadType="str")) as h:
        await h.wait("out", 2, timeout=3.5)
    gap = h.times["out"][1] - h.times["out"][0]
    assert 0.8 < gap < 1.2


async def test_invalid_crontab_rejects_the_deploy() -> None:
    with pytest.raises(DeployError) as info:
        async with FlowHarness(flow(crontab="every minute")):
            pass
    assert "crontab" in str(info.value)


async def test_interval_too_long_is_an_error_and_no_timer() -> None:
    async with FlowHarness(flow(repeat="9999999", payload="x", payloadType="str")) as h:
        await h.quiet(0.05)
        node = h.node("n1")
        assert isinstance(node, InjectNode)
        assert node.repeat_s == 0
        assert any("interval too long" in e["msg"] for e in h.logs(20))


def test_schema_ignores_unknown_fields_and_rejects_bad_props() -> None:
    assert Config.model_validate({"payload": "", "bogus": 1}).payload == ""
    with pytest.raises(ValidationError):
        Config.model_validate({"props": [{"p": 5}]})


@pytest.mark.parametrize(
    ("legacy", "payload"),
    [
        ({"payload": "hello"}, "hello"),  # no payloadType at all: a string, not a timestamp
        ({"payload": "42"}, "42"),
        ({"payload": "", "payloadType": "none"}, ""),  # pre-1.0 "none"
        ({"payload": "x", "payloadType": "string"}, "x"),
        ({"props": [{"p": "payload"}], "payload": "p"}, "p"),
    ],
)
async def test_legacy_payload_without_a_type_is_a_string(
    legacy: dict[str, Any], payload: str
) -> None:
    async with FlowHarness(flow(**legacy)) as h:
        press(h)
        (msg,) = await h.wait("out")
    assert msg["payload"] == payload


def test_legacy_migration_is_pure() -> None:
    cfg = Config.model_validate({"payload": "1", "payloadType": "num", "topic": "t"})
    assert effective_props(cfg) == [
        {"p": "payload", "v": "1", "vt": "num"},
        {"p": "topic", "v": "t", "vt": "str"},
    ]


async def test_stop_cancels_a_pending_once() -> None:
    async with FlowHarness(flow(once=True, onceDelay=0.2)) as h:
        pass
    await asyncio.sleep(0.3)
    assert "out" not in h.messages
