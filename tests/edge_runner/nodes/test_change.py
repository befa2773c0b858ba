"""change: set/change/delete/move rules, typed values, legacy format, context targets.

This module also holds ``run_conformance_case``: the black-box cases of
/work/shared/conformance/cases.json replayed in-process through FlowHarness (the other
sequence-node test modules import it for their own cases).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

CASES_FILE = Path("/work/shared/conformance/cases.json")
EARLY_SLACK_MS = 2
LATE_SLACK_MS = 75


def conformance_cases(node_type: str) -> list[Any]:
    """pytest params for every case whose first node type is ``node_type``."""
    if not CASES_FILE.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{CASES_FILE} not present"))]
    cases = json.loads(CASES_FILE.read_text())["cases"]
    return [pytest.param(c, id=c["name"]) for c in cases if c["node_types"][0] == node_type]


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("$nan") is True:
            return math.nan
        if "$buffer" in value:
            return bytes(value["$buffer"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _matches(expected: Any, actual: Any, where: str) -> None:
    if isinstance(expected, dict):
        if "$type" in expected:
            kinds: dict[str, type | tuple[type, ...]] = {
                "string": str,
                "number": (int, float),
                "boolean": bool,
                "object": dict,
                "array": list,
            }
            assert isinstance(actual, kinds[expected["$type"]]), f"{where}: {actual!r}"
            return
        if "$buffer" in expected:
            assert actual == bytes(expected["$buffer"]), f"{where}: {actual!r}"
            return
        if "$nan" in expected:
            assert isinstance(actual, float), f"{where}: {actual!r}"
            assert math.isnan(actual), f"{where}: {actual!r}"
            return
        if "$any" in expected:
            return
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        assert set(actual) == set(expected), f"{where}: keys {set(actual)} != {set(expected)}"
        for key, value in expected.items():
            _matches(value, actual[key], f"{where}.{key}")
        return
    if isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: {actual!r}"
        assert len(actual) == len(expected), f"{where}: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _matches(e, a, f"{where}[{i}]")
        return
    assert type(expected) is type(actual) or (
        isinstance(expected, (int, float))
        and isinstance(actual, (int, float))
        and not isinstance(actual, bool)
    ), f"{where}: {actual!r} is not {expected!r}"
    assert expected == actual, f"{where}: {actual!r} != {expected!r}"


async def run_conformance_case(case: dict[str, Any]) -> None:
    """Replay one case: inputs at their times, then check every sink's messages and timing."""
    async with FlowHarness(case["flow"]) as h:
        start = time.monotonic()
        for item in sorted(case["inputs"], key=lambda i: i["at_ms"]):
            delay = start + item["at_ms"] / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            h.receive(item["node_id"], _decode(item["msg"]))
        by_sink: dict[str, list[dict[str, Any]]] = {}
        for exp in case["expected"]:
            by_sink.setdefault(exp["sink"], []).append(exp)
        for sink, expected in by_sink.items():
            await h.wait(sink, len(expected), timeout=5.0)
        if case.get("exact_count"):
            await h.quiet(case.get("settle_ms", 200) / 1000)
        for sink in case["sinks"]:
            expected = by_sink.get(sink, [])
            got = h.messages.get(sink, [])
            assert len(got) == len(expected), f"{sink}: {len(got)} messages: {got}"
            for i, (exp, msg) in enumerate(zip(expected, got, strict=True)):
                for key, value in exp["match"].items():
                    assert key in msg or value == {"$any": True}, f"{sink}[{i}] lacks {key}: {msg}"
                    if key in msg:
                        _matches(value, msg[key], f"{sink}[{i}].{key}")
                for key in exp.get("absent", []):
                    assert key not in msg, f"{sink}[{i}] has {key}: {msg}"
                if "at_ms" in exp:
                    lo, hi = exp["at_ms"]
                    at = (h.times[sink][i] - start) * 1000
                    assert lo - EARLY_SLACK_MS <= at <= hi + LATE_SLACK_MS, f"{sink}[{i}] at {at}ms"


def change(rules: list[dict[str, Any]] | None = None, **extra: Any) -> list[dict[str, Any]]:
    node: dict[str, Any] = {"id": "n1", "type": "change", "wires": [["out"]], **extra}
    if rules is not None:
        node["rules"] = rules
    return [node, {"id": "out", "type": "helper"}]


async def run(flow: list[dict[str, Any]], msg: dict[str, Any], count: int = 1) -> FlowHarness:
    async with FlowHarness(flow) as h:
        h.receive("n1", msg)
        if count:
            await h.wait("out", count)
        else:
            await h.quiet(0.05)
    return h


@pytest.mark.parametrize("case", conformance_cases("change"))
async def test_conformance(case: dict[str, Any]) -> None:
    await run_conformance_case(case)


async def test_set_from_msg_property_and_constant_string() -> None:
    h = await run(
        change(
            [
                {"t": "set", "p": "orig", "pt": "msg", "to": "payload", "tot": "msg"},
                {"t": "set", "p": "topic", "pt": "msg", "to": "bench/chain", "tot": "str"},
            ]
        ),
        {"payload": 7},
    )
    (msg,) = h.messages["out"]
    assert msg["orig"] == 7
    assert msg["topic"] == "bench/chain"


async def test_set_json_gives_each_message_its_own_object() -> None:
    flow = change([{"t": "set", "p": "payload", "pt": "msg", "to": '{"a":[1]}', "tot": "json"}])
    async with FlowHarness(flow) as h:
        h.receive("n1", {})
        h.receive("n1", {})
        first, second = await h.wait("out", 2)
        assert first["payload"] == {"a": [1]}
        assert second["payload"] == {"a": [1]}
        assert getattr(h.node("n1"), "ops")  # noqa: B009  # compiled once at construction


async def test_set_flow_and_global_then_read_them_back() -> None:
    flow = change(
        [
            {"t": "set", "p": "count", "pt": "flow", "to": "payload", "tot": "msg"},
            {"t": "set", "p": "#:(file)::g", "pt": "global", "to": "5", "tot": "num"},
            {"t": "set", "p": "fromflow", "pt": "msg", "to": "count", "tot": "flow"},
            {"t": "set", "p": "fromglobal", "pt": "msg", "to": "g", "tot": "global"},
        ]
    )
    async with FlowHarness(flow) as h:
        h.receive("n1", {"payload": "x"})
        (msg,) = await h.wait("out")
        assert msg["fromflow"] == "x"
        assert msg["fromglobal"] == 5
        assert h.engine.global_context.get("g") == 5


async def test_delete_message_and_context_properties() -> None:
    flow = change(
        [
            {"t": "set", "p": "k", "pt": "flow", "to": "v", "tot": "str"},
            {"t": "delete", "p": "k", "pt": "flow"},
            {"t": "delete", "p": "payload.a", "pt": "msg"},
        ]
    )
    async with FlowHarness(flow) as h:
        h.receive("n1", {"payload": {"a": 1, "b": 2}})
        (msg,) = await h.wait("out")
        assert msg["payload"] == {"b": 2}
        assert h.engine.nodes["n1"].flow.get("k") is None


async def test_change_number_and_boolean_properties_only_on_equal_values() -> None:
    flow = change(
        [
            {
                "t": "change",
                "p": "n",
                "pt": "msg",
                "from": "5",
                "fromt": "num",
                "to": "five",
                "tot": "str",
            },
            {
                "t": "change",
                "p": "b",
                "pt": "msg",
                "from": "true",
                "fromt": "bool",
                "to": "0",
                "tot": "num",
            },
            {
                "t": "change",
                "p": "m",
                "pt": "msg",
                "from": "5",
                "fromt": "num",
                "to": "x",
                "tot": "str",
            },
        ]
    )
    h = await run(flow, {"n": 5, "b": True, "m": 6})
    (msg,) = h.messages["out"]
    assert msg["n"] == "five"
    assert msg["b"] == 0
    assert msg["m"] == 6


async def test_change_search_string_is_literal_and_replaces_every_occurrence() -> None:
    flow = change(
        [
            {
                "t": "change",
                "p": "payload",
                "pt": "msg",
                "from": "a.b",
                "fromt": "str",
                "to": "$&!",
                "tot": "str",
            }
        ]
    )
    h = await run(flow, {"payload": "a.b axb a.b"})
    assert h.messages["out"][0]["payload"] == "a.b! axb a.b!"


async def test_change_with_search_value_taken_from_the_message() -> None:
    flow = change(
        [
            {
                "t": "change",
                "p": "payload",
                "pt": "msg",
                "from": "needle",
                "fromt": "msg",
                "to": "X",
                "tot": "str",
            }
        ]
    )
    h = await run(flow, {"payload": "find the (pin)", "needle": "(pin)"})
    assert h.messages["out"][0]["payload"] == "find the X"


async def test_move_into_a_child_of_itself() -> None:
    h = await run(
        change([{"t": "move", "p": "payload", "pt": "msg", "to": "payload.inner", "tot": "msg"}]),
        {"payload": 3},
    )
    assert h.messages["out"][0]["payload"] == {"inner": 3}


async def test_move_to_flow_context() -> None:
    flow = change([{"t": "move", "p": "payload", "pt": "msg", "to": "saved", "tot": "flow"}])
    async with FlowHarness(flow) as h:
        h.receive("n1", {"payload": [1, 2]})
        (msg,) = await h.wait("out")
        assert "payload" not in msg
        assert h.engine.nodes["n1"].flow.get("saved") == [1, 2]


async def test_jsonata_value_with_context_functions_and_env() -> None:
    flow = change(
        [
            {
                "t": "set",
                "p": "payload",
                "pt": "msg",
                "to": "payload * 2 + $flowContext('k')",
                "tot": "jsonata",
            },
            {"t": "set", "p": "who", "pt": "msg", "to": "WHO", "tot": "env"},
        ]
    )
    async with FlowHarness(flow, env={"WHO": "edge"}) as h:
        h.engine.nodes["n1"].flow.set("k", 1)
        h.receive("n1", {"payload": 4})
        (msg,) = await h.wait("out")
        assert msg["payload"] == 9
        assert msg["who"] == "edge"


async def test_jsonata_runtime_error_is_reported_and_nothing_is_sent() -> None:
    flow = change(
        [{"t": "set", "p": "payload", "pt": "msg", "to": "$number('x')", "tot": "jsonata"}]
    )
    async with FlowHarness(flow) as h:
        h.receive("n1", {"payload": 1})
        await h.quiet(0.05)
        assert "out" not in h.messages
        errors = h.logs(20)
        assert errors
        assert "JSONata" in errors[0]["msg"]


async def test_set_date_timestamp_and_bool() -> None:
    flow = change(
        [
            {"t": "set", "p": "ts", "pt": "msg", "to": "", "tot": "date"},
            {"t": "set", "p": "ok", "pt": "msg", "to": "TRUE", "tot": "bool"},
        ]
    )
    before = int(time.time() * 1000)
    h = await run(flow, {})
    msg = h.messages["out"][0]
    assert before <= msg["ts"] <= int(time.time() * 1000)
    assert msg["ok"] is True


async def test_set_beneath_a_string_warns_and_keeps_the_value() -> None:
    h = await run(
        change([{"t": "set", "p": "payload.x", "pt": "msg", "to": "1", "tot": "str"}]),
        {"payload": "text"},
    )
    assert h.messages["out"][0]["payload"] == "text"
    assert any("non-object" in log["msg"] for log in h.logs(30))


async def test_legacy_single_rule_formats() -> None:
    legacy_change = change(
        None, action="change", property="payload", **{"from": "o+"}, to="0", reg=True
    )
    h = await run(legacy_change, {"payload": "foo boo"})
    assert h.messages["out"][0]["payload"] == "f0 b0"
    legacy_set = change(None, action="replace", property="copy", to="msg.payload")
    h = await run(legacy_set, {"payload": "p"})
    assert h.messages["out"][0]["copy"] == "p"


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"t": "change", "p": "payload", "from": "([a-", "fromt": "re", "to": "x"}, "regular expr"),
        ({"t": "set", "p": "payload", "to": "{bad", "tot": "json"}, "not valid JSON"),
        ({"t": "set", "p": "payload", "to": "(1 +", "tot": "jsonata"}, "JSONata"),
        ({"t": "set", "p": "", "to": "x"}, "needs a property"),
        ({"t": "explode", "p": "payload"}, "t"),
    ],
)
async def test_bad_rules_are_rejected_at_deploy(rule: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DeployError) as info:
        async with FlowHarness(change([rule])):
            pass
    assert fragment in str(info.value)
