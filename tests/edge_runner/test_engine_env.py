"""Environment variables as Node-RED evaluates them, ``$parent.``, and subflow status badges."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

CAP = {"id": "cap", "type": "helper", "z": "t1"}


def reader(node_id: str, names: list[str], z: str = "t1", **extra: Any) -> dict[str, Any]:
    body = "return {'payload': {n: env.get(n) for n in " + repr(names) + "}}"
    return {
        "id": node_id,
        "type": "python-function",
        "z": z,
        "func": body,
        "outputs": 1,
        "wires": [["cap"]],
        **extra,
    }


async def read(flow: list[dict[str, Any]], node_id: str = "r") -> dict[str, Any]:
    async with FlowHarness(flow) as h:
        h.receive(node_id, {})
        payload: dict[str, Any] = (await h.wait("cap"))[0]["payload"]
        return payload


async def test_env_list_types_are_evaluated_like_node_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MANIFOLD_TEST_HOST", "plc.local")
    monkeypatch.setenv("MANIFOLD_TEST_PORT", "502")
    env = [
        {"name": "ALIAS", "value": "PORT", "type": "env"},  # refers to a sibling defined later
        {"name": "PORT", "value": "502", "type": "num"},
        {"name": "ON", "value": "true", "type": "bool"},
        {"name": "OFF", "value": "True", "type": "bool"},  # exactly "true" only
        {"name": "CONF", "value": '{"a": [1, 2]}', "type": "json"},
        # JSONata reads the parent scope (here the process environment), as in Node-RED
        {"name": "SUM", "value": "$number($env('MANIFOLD_TEST_PORT')) + 1", "type": "jsonata"},
        {"name": "URL", "value": "${MANIFOLD_TEST_HOST}:${PORT}", "type": "env"},
        {"name": "HOST", "value": "MANIFOLD_TEST_HOST", "type": "env"},
        {"name": "NONE", "value": "NOT_DEFINED_ANYWHERE", "type": "env"},
    ]
    flow = [
        {"id": "t1", "type": "tab", "env": env},
        reader("r", ["ALIAS", "PORT", "ON", "OFF", "CONF", "SUM", "URL", "HOST", "NONE"]),
        CAP,
    ]
    assert await read(flow) == {
        "ALIAS": 502,
        "PORT": 502,
        "ON": True,
        "OFF": False,
        "CONF": {"a": [1, 2]},
        "SUM": 503,
        "URL": "plc.local:502",
        "HOST": "plc.local",
        "NONE": "",
    }


async def test_a_variable_defined_as_itself_reads_the_parent_scope() -> None:
    flow = [
        {"id": "t1", "type": "tab", "env": [{"name": "LEVEL", "value": "tab", "type": "str"}]},
        {
            "id": "g",
            "type": "group",
            "z": "t1",
            "env": [
                {"name": "LEVEL", "value": "LEVEL", "type": "env"},
                {"name": "OUTER", "value": "$parent.LEVEL", "type": "env"},
            ],
        },
        reader("r", ["LEVEL", "OUTER"], g="g"),
        CAP,
    ]
    assert await read(flow) == {"LEVEL": "tab", "OUTER": "tab"}


async def test_cred_entries_come_from_the_owners_credentials_and_stay_secret() -> None:
    flow = [
        {
            "id": "t1",
            "type": "tab",
            "env": [{"name": "TOKEN", "value": "", "type": "cred"}],
            "credentials": {"TOKEN": "s3cret-token"},
        },
        {
            "id": "r",
            "type": "python-function",
            "z": "t1",
            "outputs": 1,
            "func": "node.warn('token is ' + env.get('TOKEN'))\nreturn {'ok': env.get('TOKEN')}",
            "wires": [["cap"]],
        },
        CAP,
    ]
    async with FlowHarness(flow) as h:
        h.receive("r", {})
        assert (await h.wait("cap"))[0]["ok"] == "s3cret-token"
        assert h.engine.credentials.creds["t1"] == {"TOKEN": "s3cret-token"}
        assert [log["msg"] for log in h.logs(30)] == ["token is ***"]
        assert all("s3cret" not in str(n) for n in h.engine.flows)
        # a later deploy without the value (the editor sends none) keeps the stored one
        again = [dict(n) for n in h.flow]
        again[0] = {k: v for k, v in again[0].items() if k != "credentials"}
        await h.engine.deploy(again)
        h.receive("r", {})
        assert (await h.wait("cap", 2))[1]["ok"] == "s3cret-token"


async def test_bad_env_entries_reject_the_deploy_with_the_owner_named() -> None:
    flow = [
        {"id": "t1", "type": "tab", "env": [{"name": "J", "value": "{nope", "type": "json"}]},
        {
            "id": "g",
            "type": "group",
            "z": "t1",
            "env": [{"name": "E", "value": "$$$ (", "type": "jsonata"}],
        },
        reader("r", ["J"], g="g"),
        CAP,
    ]
    with pytest.raises(DeployError) as info:
        async with FlowHarness(flow):
            pass
    errors = {e["id"]: e["error"] for e in info.value.errors}
    assert errors["t1"].startswith("flow env 'J': invalid JSON")
    assert errors["g"].startswith("group env 'E':")


async def test_whole_string_references_only_and_undefined_ones_stay_as_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MANIFOLD_TEST_EMPTY", "")
    flow = [
        {"id": "t1", "type": "tab", "env": [{"name": "N", "value": "7", "type": "num"}]},
        {
            "id": "c",
            "type": "change",
            "z": "t1",
            "rules": [
                {"t": "set", "p": "whole", "pt": "msg", "to": "${N}", "tot": "str"},
                {"t": "set", "p": "old", "pt": "msg", "to": "$(N)", "tot": "str"},
                {"t": "set", "p": "me", "pt": "msg", "to": "${NR_NODE_ID}", "tot": "str"},
                {"t": "set", "p": "embedded", "pt": "msg", "to": "n=${N}", "tot": "str"},
                {"t": "set", "p": "undefined", "pt": "msg", "to": "${NOT_SET_X}", "tot": "str"},
                {
                    "t": "set",
                    "p": "empty",
                    "pt": "msg",
                    "to": "${MANIFOLD_TEST_EMPTY}",
                    "tot": "str",
                },
            ],
            "wires": [["cap"]],
        },
        CAP,
    ]
    async with FlowHarness(flow) as h:
        h.receive("c", {})
        (out,) = await h.wait("cap")
    assert out["whole"] == "7"  # the number 7, then set as a "str" value by the change node
    assert out["old"] == "7"
    assert out["me"] == "c"
    assert out["embedded"] == "n=${N}"
    assert out["undefined"] == "${NOT_SET_X}"
    assert out["empty"] == "${MANIFOLD_TEST_EMPTY}"


SUBFLOW = [
    {"id": "t1", "type": "tab", "env": [{"name": "SITE", "value": "plant-1", "type": "str"}]},
    {
        "id": "sf",
        "type": "subflow",
        "name": "S",
        "in": [{"wires": [{"id": "inner"}]}],
        "out": [{"wires": [{"id": "inner", "port": 0}]}],
        "env": [{"name": "SITE", "value": "subflow-default", "type": "str"}],
    },
    {
        "id": "inner",
        "type": "python-function",
        "z": "sf",
        "outputs": 1,
        "func": (
            "flow.set('$parent.seen_by_subflow', env.get('$parent.SITE'))\n"
            "flow.set('local', 1)\n"
            "return {'payload': {'site': env.get('SITE'), 'parent_site': env.get('$parent.SITE'),"
            " 'parent_counter': flow.get('$parent.counter'), 'local': flow.get('local'),"
            " 'too_far': flow.get('$parent.$parent.counter')}}"
        ),
        "wires": [[]],
    },
    {"id": "inst", "type": "subflow:sf", "z": "t1", "wires": [["cap"]]},
    CAP,
]


async def test_parent_prefix_reaches_the_flow_around_a_subflow() -> None:
    async with FlowHarness(SUBFLOW) as h:
        tab_flow = h.engine.flow_context("t1")
        tab_flow.set("counter", 41)
        h.receive("inst", {})
        (out,) = await h.wait("cap")
        assert out["payload"] == {
            "site": "subflow-default",
            "parent_site": "plant-1",
            "parent_counter": 41,
            "local": 1,
            "too_far": None,  # a tab's flow context has no parent
        }
        assert tab_flow.get("seen_by_subflow") == "plant-1"
        assert tab_flow.get("local") is None
        tab_flow.set("$parent.ignored", 1)  # nothing above a tab: a no-op, not an error
        assert tab_flow.get("$parent.ignored") is None


def status_subflow(body: str) -> list[dict[str, Any]]:
    return [
        {"id": "t1", "type": "tab"},
        {
            "id": "sf",
            "type": "subflow",
            "name": "S",
            "in": [{"wires": [{"id": "reporter"}]}],
            "out": [],
            "status": {"wires": [{"id": "reporter", "port": 0}]},
        },
        {
            "id": "reporter",
            "type": "python-function",
            "z": "sf",
            "outputs": 1,
            "func": body,
            "wires": [[]],
        },
        {"id": "inst", "type": "subflow:sf", "z": "t1", "wires": []},
    ]


@pytest.mark.parametrize(
    ("payload", "badge"),
    [
        ("'running'", {"text": "running"}),
        (
            "{'fill': 'red', 'shape': 'ring', 'text': 'down'}",
            {"fill": "red", "shape": "ring", "text": "down"},
        ),
        ("{}", {}),
        ("12.5", {"text": "12.5"}),
        ("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]", {"text": "[1,2,3,4,5,6,7,8,9,10,11,12]"}),
        ("{'value': 'x' * 40}", {"text": '{"value":"' + "x" * 22 + "..."}),
    ],
)
async def test_the_status_output_sets_the_instance_badge(
    payload: str, badge: dict[str, str]
) -> None:
    async with FlowHarness(status_subflow(f"return {{'payload': {payload}}}")) as h:
        h.receive("inst", {})
        await h.until(lambda: bool(h.statuses("inst")))
        assert h.statuses("inst") == [badge]  # {} clears the badge


async def test_a_status_message_without_payload_is_used_as_is() -> None:
    body = "return {'status': {'fill': 'yellow', 'shape': 'dot', 'text': 'busy'}}"
    async with FlowHarness(status_subflow(body)) as h:
        h.receive("inst", {})
        await h.until(lambda: bool(h.statuses("inst")))
        assert h.statuses("inst") == [{"fill": "yellow", "shape": "dot", "text": "busy"}]


async def test_process_environment_is_reachable_from_every_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MANIFOLD_TEST_PROCESS_VAR", "from-process")
    flow: list[dict[str, Any]] = [
        {"id": "t1", "type": "tab", "env": [{"name": "X", "value": "1", "type": "str"}]},
        {"id": "g", "type": "group", "z": "t1", "env": []},
        reader("r", ["MANIFOLD_TEST_PROCESS_VAR"], g="g"),
        CAP,
    ]
    assert await read(flow) == {"MANIFOLD_TEST_PROCESS_VAR": "from-process"}


async def test_parent_prefixes_climb_through_nested_subflows() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        {"id": "outer", "type": "subflow", "name": "Outer", "in": [{"wires": [{"id": "oi"}]}]},
        {"id": "inner", "type": "subflow", "name": "Inner", "in": [{"wires": [{"id": "fn"}]}]},
        {"id": "oi", "type": "subflow:inner", "z": "outer", "wires": []},
        {
            "id": "fn",
            "type": "python-function",
            "z": "inner",
            "outputs": 1,
            "func": (
                "flow.set('level', 'inner')\n"
                "flow.set('$parent.level', 'outer')\n"
                "flow.set('$parent.$parent.level', 'tab')\n"
                "return None"
            ),
            "wires": [[]],
        },
        {"id": "inst", "type": "subflow:outer", "z": "t1", "wires": []},
    ]
    async with FlowHarness(flow) as h:
        h.receive("inst", {})
        await h.quiet(0.02)
        engine = h.engine
        assert engine.flow_context("inst.oi").get("level") == "inner"
        assert engine.flow_context("inst").get("level") == "outer"
        assert engine.flow_context("t1").get("level") == "tab"
