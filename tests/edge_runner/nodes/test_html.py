"""html: CSS selectors on an HTML5-parsed document, outputs as Node-RED 5.0.7 (cheerio) gives."""

from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

# (document, selector, "html" output, "text" output) as Node-RED 5.0.7's html node computes
# them (cheerio 1.0.0-rc.10: its `$(this).html()` re-loaded and written with `.xml()`, and
# `$(this).text()`), recorded by running that cheerio under Node.js 22.
REFERENCE = [
    (
        "<html><body><h1>Hi <b>there</b></h1><h1 class='x' id=a data-v=\"1 &amp; 2\">Two<br>lines"
        "<img src=a.png></h1></body></html>",
        "h1",
        ["Hi <b>there</b>", 'Two<br/>lines<img src="a.png"/>'],
        ["Hi there", "Twolines"],
    ),
    (
        "<table><tr><td>1</td><td>2</td></tr><tr><td>3</td><td></td></tr></table>",
        "table tbody tr td:nth-child(2)",
        ["2", ""],
        ["2", ""],
    ),
    ("<table><tr><td>1</td></tr></table>", "table > tr", [], []),
    (
        "<p>café &lt;x&gt; &nbsp; \"q\" 'a' <!-- c --> <script>var a = 1 < 2;</script></p>",
        "p",
        [
            "caf&#xE9; &lt;x&gt; &#xA0; &quot;q&quot; &apos;a&apos; <!-- c --> <script>var a = 1 "
            "&lt; 2;</script>"
        ],
        ["café <x> \xa0 \"q\" 'a'  "],
    ),
    (
        "<ul><li>a</li><li>b<ul><li>c</li></ul></li></ul>",
        "li",
        ["a", "b<ul><li>c</li></ul>", "c"],
        ["a", "bc", "c"],
    ),
    ("<div><p>x</p></div><div>y</div>", "div:contains(x)", ["<p>x</p>"], ["x"]),
    ("<div><p>x</p><p>y</p></div>", "p:first", ["x"], ["x"]),
    (
        "<div><svg viewBox='0 0 1 1'><path d='M0'/><foreignObject><p>x</p></foreignObject></svg><"
        "input checked><textarea>a&amp;b</textarea></div>",
        "div",
        [
            '<svg viewBox="0 0 1 1"><path d="M0"/><foreignObject><p>x</p></foreignObject></svg><i'
            'nput checked=""/><textarea>a&amp;b</textarea>'
        ],
        ["xa&b"],
    ),
    ("plain text", "body", ["plain text"], ["plain text"]),
    (
        "<p>a</p><p><a href='x?a=1&b=2'>l</a></p>",
        "p:has(a)",
        ['<a href="x?a=1&amp;b=2">l</a>'],
        ["l"],
    ),
    (
        "<select><option selected value=1>One</option></select>",
        "option[selected]",
        ["One"],
        ["One"],
    ),
    ("<p title='&quot;x&quot; <y>'>&amp;</p>", "p", ["&amp;"], ["&"]),
    (
        "<p>a<script>x</script><style>y</style></p><script>z</script>",
        "script",
        ["x", "z"],
        ["", ""],
    ),
    ("<p>😀 \xa0x\xa0 </p>", "p", ["&#x1F600; &#xA0;x&#xA0;"], ["😀 \xa0x\xa0 "]),
    (
        "<div> <p>a</p>, <p>b</p></div>",
        "p, div",
        ["<p>a</p>, <p>b</p>", "a", "b"],
        [" a, b", "a", "b"],
    ),
    ("<ul><li>a</li><li>b</li><li>c</li></ul>", "li:eq(1)", ["b"], ["b"]),
    ("<ul><li>a</li><li>b</li><li>c</li></ul>", "ul li:last", ["c"], ["c"]),
    ("<ul><li>a</li><li>b</li><li>c</li><li>d</li></ul>", "li:odd", ["b", "d"], ["b", "d"]),
    ("<ul><li>a</li><li>b</li><li>c</li><li>d</li></ul>", "li:gt(1)", ["c", "d"], ["c", "d"]),
    ("<ul><li class='A b'>a</li><li class=b>b</li></ul>", "li.b:not(.A)", ["b"], ["b"]),
    (
        "<div id=main><a href=/x>one</a> <a href='http://e.com/y'>two</a></div>",
        "#main a[href^=http]",
        ["two"],
        ["two"],
    ),
    ("<pre>\n  code\n</pre>", "pre", ["code"], ["  code\n"]),
    ("<p>x<p>y", "p", ["x", "y"], ["x", "y"]),
    (
        "<table><thead><tr><th>h</th></tr></thead><tr><td>d</td></tr></table>",
        "tr",
        ["<th>h</th>", "<td>d</td>"],
        ["h", "d"],
    ),
    ("<div><br></div><div>  </div>", "div", ["<br/>", ""], ["", "  "]),
    (
        "<p>A &amp; B &copy; &#169; &euro;</p>",
        "p",
        ["A &amp; B &#xA9; &#xA9; &#x20AC;"],
        ["A & B © © €"],
    ),
    ("<div><p>x</p></div><div>y</div>", "div:contains(x)", ["<p>x</p>"], ["x"]),
    (
        "<table><tr><td>Total</td><td>5</td></tr><tr><td>a</td></tr></table>",
        "tr:contains('Total')",
        ["<td>Total</td><td>5</td>"],
        ["Total5"],
    ),
    ("<ul><li>ab</li><li>b</li><li>cb</li></ul>", "li:contains(b):last", ["cb"], ["cb"]),
    ("<p>a<!--x--></p>", "p", ["a<!--x-->"], ["a"]),
]


def flow(**config: Any) -> list[dict[str, Any]]:
    node = {
        "id": "h",
        "type": "html",
        "name": "",
        "property": "payload",
        "outproperty": "payload",
        "tag": "",
        "ret": "html",
        "as": "single",
        "chr": "_",
        "wires": [["out"]],
    }
    node.update(config)
    return [node, {"id": "out", "type": "helper"}]


async def run(config: dict[str, Any], msg: dict[str, Any]) -> list[dict[str, Any]]:
    async with FlowHarness(flow(**config)) as h:
        h.receive("h", msg)
        await h.quiet(0.02)
        return h.messages.get("out", [])


@pytest.mark.parametrize(("document", "selector", "html", "text"), REFERENCE)
async def test_html_and_text_match_node_red(
    document: str, selector: str, html: list[str], text: list[str]
) -> None:
    (got,) = await run({"tag": selector}, {"payload": document})
    assert got["payload"] == html
    (got,) = await run({"tag": selector, "ret": "text"}, {"payload": document})
    assert got["payload"] == text


async def test_attributes_and_complete_objects() -> None:
    page = "<a href='/x' class=\"btn\">Go <b>now</b></a><a>bare</a>"
    (got,) = await run({"tag": "a", "ret": "attr"}, {"payload": page})
    assert got["payload"] == [{"href": "/x", "class": "btn"}, {}]
    (got,) = await run({"tag": "a", "ret": "compl", "chr": "content"}, {"payload": page})
    assert got["payload"] == [
        {"content": "Go <b>now</b>", "href": "/x", "class": "btn"},
        {"content": "bare"},
    ]
    (got,) = await run({"tag": "a", "ret": "compl", "chr": ""}, {"payload": page})
    assert got["payload"][1] == {"_": "bare"}


async def test_multi_sends_one_message_per_element_with_parts_and_skips_empty_ones() -> None:
    page = "<ul><li>a</li><li></li><li>c</li></ul>"
    got = await run({"tag": "li", "as": "multi"}, {"payload": page, "_msgid": "m1", "topic": "t"})
    assert [m["payload"] for m in got] == ["a", "c"]
    assert [m["parts"] for m in got] == [
        {"id": "m1", "index": 0, "count": 3, "type": "string", "ch": ""},
        {"id": "m1", "index": 2, "count": 3, "type": "string", "ch": ""},
    ]
    assert {m["topic"] for m in got} == {"t"}
    got = await run({"tag": "li", "as": "multi", "ret": "attr"}, {"payload": page})
    assert [m["payload"] for m in got] == [{}, {}, {}]


async def test_msg_select_other_properties_buffers_and_no_match() -> None:
    page = "<p>one</p><p>two</p>"
    (got,) = await run({}, {"payload": page, "select": "p"})
    assert got["payload"] == ["one", "two"]
    (got,) = await run({"tag": "p:last"}, {"payload": page, "select": "h1"})
    assert got["payload"] == ["two"]
    config = {"tag": "p", "property": "body.html", "outproperty": "found", "ret": "text"}
    (got,) = await run(config, {"body": {"html": page.encode()}})
    assert got["found"] == ["one", "two"]
    (got,) = await run({"tag": "h1"}, {"payload": page})
    assert got["payload"] == []
    (got,) = await run({}, {"payload": page})
    assert got["payload"] == []


async def test_a_message_without_the_property_passes_unchanged() -> None:
    (got,) = await run({"tag": "p"}, {"topic": "no html"})
    assert got == {"topic": "no html", "_msgid": got["_msgid"]}


@pytest.mark.parametrize(
    ("tag", "payload", "error"),
    [
        ("div[[[", "<p>x</p>", "html: invalid selector 'div[[['"),
        ("p:contains(x) b", "<p>x</p>", "html: :contains() is supported at the end"),
        ("p", 123, "html: expected a string or a buffer of HTML, got int"),
        ("p", None, "html: expected a string or a buffer of HTML, got null"),
    ],
)
async def test_bad_selector_or_input_is_a_clear_node_error(
    tag: str, payload: Any, error: str
) -> None:
    async with FlowHarness(flow(tag=tag)) as h:
        h.receive("h", {"payload": payload})
        await h.until(lambda: h.logs())
        assert h.logs()[0]["msg"].startswith(error)
        assert "out" not in h.messages


async def test_unknown_output_kind_is_refused_at_deploy() -> None:
    with pytest.raises(DeployError, match="ret"):
        await run({"ret": "val"}, {"payload": ""})
