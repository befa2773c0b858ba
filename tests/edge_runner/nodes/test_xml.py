"""The xml node: xml2js-shaped objects, attributes, text keys, building, bad documents."""

from typing import Any

import pytest

from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'


def flow(**config: Any) -> list[dict[str, Any]]:
    node = {
        "id": "x",
        "type": "xml",
        "property": "payload",
        "attr": "",
        "chr": "",
        "name": "",
        "wires": [["out"]],
    }
    node.update(config)
    return [
        node,
        {"id": "out", "type": "helper"},
        {"id": "c1", "type": "catch", "scope": None, "uncaught": False, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]


def core(**config: Any) -> list[dict[str, Any]]:
    return flow(**config)[:2]


async def convert(value: Any, msg: dict[str, Any] | None = None, **config: Any) -> Any:
    async with FlowHarness(core(**config)) as h:
        h.receive("x", {"payload": value, **(msg or {})})
        (out,) = await h.wait("out")
    return out["payload"]


async def test_xml_becomes_xml2js_object() -> None:
    text = "<employees><firstName>John</firstName><lastName>Smith</lastName></employees>"
    assert await convert(text) == {"employees": {"firstName": ["John"], "lastName": ["Smith"]}}


async def test_attributes_text_repeats_and_empty_elements() -> None:
    text = (
        '<?xml version="1.0"?>\n<p class="x" id="7">hi <b>1</b>\n  <b>2</b><i/>'
        "<![CDATA[<raw>]]></p>"
    )
    assert await convert(text.encode()) == {
        "p": {"$": {"class": "x", "id": "7"}, "_": "hi \n  <raw>", "b": ["1", "2"], "i": [""]}
    }


async def test_custom_attribute_and_text_keys() -> None:
    got = await convert('<a k="v">t</a>', attr="@", chr="#")
    assert got == {"a": {"@": {"k": "v"}, "#": "t"}}


async def test_namespaced_names_are_kept_as_written() -> None:
    text = '<s:Env xmlns:s="urn:x"><s:Body n="1"/></s:Env>'
    assert await convert(text) == {
        "s:Env": {"$": {"xmlns:s": "urn:x"}, "s:Body": [{"$": {"n": "1"}}]}
    }


async def test_options_explicit_array_false_and_no_root() -> None:
    options = {"options": {"explicitArray": False, "explicitRoot": False}}
    got = await convert("<r><a>1</a><b>2</b><b>3</b></r>", options)
    assert got == {"a": "1", "b": ["2", "3"]}


async def test_object_becomes_xml_with_declaration() -> None:
    value = {"employees": {"firstName": ["John"], "lastName": ["Smith"]}}
    assert await convert(value) == (
        DECL + "<employees><firstName>John</firstName><lastName>Smith</lastName></employees>"
    )


async def test_build_attributes_text_escaping_and_headless() -> None:
    value = {"p": {"$": {"q": 'a"<b'}, "_": "x & y", "n": [1, 2.0, True, None]}}
    got = await convert(value, {"options": {"headless": True}})
    assert got == ('<p q="a&quot;&lt;b">x &amp; y<n>1</n><n>2</n><n>true</n><n/></p>')


async def test_build_pretty_and_root_name() -> None:
    got = await convert({"a": 1, "b": "2"}, {"options": {"renderOpts": {"pretty": True}}})
    assert got == DECL + "\n<root>\n  <a>1</a>\n  <b>2</b>\n</root>"


async def test_round_trip() -> None:
    text = '<r v="1"><a>x</a><a>y</a><c><d>z</d></c></r>'
    async with FlowHarness(
        [
            {"id": "x1", "type": "xml", "wires": [["x2"]]},
            {"id": "x2", "type": "xml", "wires": [["out"]]},
            {"id": "out", "type": "helper"},
        ]
    ) as h:
        h.receive("x1", {"payload": text, "options": {"headless": True}})
        (out,) = await h.wait("out")
    assert out["payload"] == text


async def test_malformed_xml_entities_and_bad_names_are_catchable_errors() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;">]><l>&b;</l>'
    )
    xxe = '<?xml version="1.0"?><!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]><f>&x;</f>'
    async with FlowHarness(flow()) as h:
        for bad in ("<a><b></a>", "", bomb, xxe, {"bad name": 1}):
            h.receive("x", {"payload": bad})
        errs = await h.wait("errs", 5)
        assert "out" not in h.messages
    messages = [e["error"]["message"] for e in errs]
    assert messages[0].startswith("Invalid XML: mismatched tag at line 1")
    assert messages[1].startswith("Invalid XML")
    assert "entities" in messages[2]
    assert "entities" in messages[3]
    assert messages[4] == "Invalid XML element name 'bad name'"


async def test_numbers_are_ignored_with_a_warning() -> None:
    async with FlowHarness(core()) as h:
        h.receive("x", {"payload": 12})
        await h.quiet(0.05)
        assert "out" not in h.messages
        assert h.logs(30)
