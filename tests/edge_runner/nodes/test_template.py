"""template: mustache rendering, plain text, msg.template, context/env, json/yaml output."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness
from tests.edge_runner.nodes.test_change import conformance_cases, run_conformance_case

pytestmark = pytest.mark.asyncio


def template(text: str, **extra: Any) -> list[dict[str, Any]]:
    node = {
        "id": "n1",
        "type": "template",
        "field": "payload",
        "fieldType": "msg",
        "syntax": "mustache",
        "output": "str",
        "template": text,
        "wires": [["out"]],
        **extra,
    }
    return [node, {"id": "out", "type": "helper"}]


async def render(
    flow: list[dict[str, Any]], msg: dict[str, Any], env: dict[str, str] | None = None
) -> dict[str, Any]:
    async with FlowHarness(flow, env=env) as h:
        h.receive("n1", msg)
        (out,) = await h.wait("out")
        return out


@pytest.mark.parametrize("case", conformance_cases("template"))
async def test_conformance(case: dict[str, Any]) -> None:
    await run_conformance_case(case)


@pytest.mark.parametrize(
    ("text", "msg", "expected"),
    [
        ("{{payload}}", {"payload": 5.5}, "5.5"),
        ("{{payload}}", {"payload": True}, "true"),
        ("{{payload}}", {"payload": [1, 2]}, "1,2"),
        ("{{payload}}", {"payload": {"a": 1}}, "[object Object]"),
        ("[{{missing}}]", {}, "[]"),
        ("{{payload}}", {"payload": "<a&b>"}, "&lt;a&amp;b&gt;"),
        ("{{{payload}}}", {"payload": "<a&b>"}, "<a&b>"),
        ("{{& payload}}", {"payload": "<a>"}, "<a>"),
        ("{{#items}}<{{name}}>{{/items}}", {"items": [{"name": "a"}, {"name": "b"}]}, "<a><b>"),
        ("{{#items}}{{.}},{{/items}}", {"items": [1, 2, 3]}, "1,2,3,"),
        ("{{^items}}none{{/items}}", {"items": []}, "none"),
        ("{{#flag}}yes{{/flag}}{{^flag}}no{{/flag}}", {"flag": 0}, "no"),
        ("{{#obj}}{{a}}-{{topic}}{{/obj}}", {"obj": {"a": 1}, "topic": "t"}, "1-t"),
        ("a{{! a comment }}b", {}, "ab"),
        ("{{=<% %>=}}<% payload %>", {"payload": "x"}, "x"),
        ("{{payload.length}}", {"payload": "abcd"}, "4"),
        ("{{payload.1}}", {"payload": ["a", "b"]}, "b"),
        (
            "list:\n{{#items}}\n- {{.}}\n{{/items}}\nend",
            {"items": ["a", "b"]},
            "list:\n- a\n- b\nend",
        ),
    ],
)
async def test_mustache(text: str, msg: dict[str, Any], expected: str) -> None:
    assert (await render(template(text), msg))["payload"] == expected


async def test_flow_global_and_env_values() -> None:
    flow = template("{{flow.a}}/{{global.b.c}}/{{env.WHO}}/{{flow.none}}")
    async with FlowHarness(flow, env={"WHO": "me"}) as h:
        h.engine.nodes["n1"].flow.set("a", 1)
        h.engine.global_context.set("b", {"c": "deep"})
        h.receive("n1", {})
        (out,) = await h.wait("out")
        assert out["payload"] == "1/deep/me/"


async def test_msg_template_used_only_when_the_node_has_none() -> None:
    out = await render(template(""), {"payload": "p", "template": "got {{payload}}"})
    assert out["payload"] == "got p"


async def test_json_output_parses_and_escapes_strings() -> None:
    flow = template('{"v": {{payload}}, "s": "{{{text}}}"}', output="json")
    out = await render(flow, {"payload": 3, "text": "a\nb"})
    assert out["payload"] == {"v": 3, "s": "a\nb"}


async def test_yaml_output() -> None:
    out = await render(template("a: {{payload}}\nb: [1, 2]", output="yaml"), {"payload": 1})
    assert out["payload"] == {"a": 1, "b": [1, 2]}


async def test_invalid_json_output_is_an_error_and_nothing_is_sent() -> None:
    async with FlowHarness(template("{{payload}}", output="json")) as h:
        h.receive("n1", {"payload": "not json"})
        await h.quiet(0.03)
        assert "out" not in h.messages
        assert "not valid JSON" in h.logs(20)[0]["msg"]


async def test_render_into_flow_context() -> None:
    flow = template("v={{payload}}", field="rendered", fieldType="flow")
    async with FlowHarness(flow) as h:
        h.receive("n1", {"payload": 2})
        (out,) = await h.wait("out")
        assert out["payload"] == 2
        assert h.engine.nodes["n1"].flow.get("rendered") == "v=2"


async def test_bad_msg_template_is_a_catchable_error() -> None:
    async with FlowHarness(template("")) as h:
        h.receive("n1", {"template": "{{#open}}"})
        await h.quiet(0.03)
        assert "out" not in h.messages
        assert "unclosed section" in h.logs(20)[0]["msg"]


@pytest.mark.parametrize(
    "bad",
    [{"template": "{{#a}}x"}, {"template": "{{/a}}"}, {"output": "xml"}, {"fieldType": "file"}],
)
async def test_bad_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(DeployError):
        async with FlowHarness(template("x", **bad)):
            pass
