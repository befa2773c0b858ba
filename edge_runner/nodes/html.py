"""``html``: pick elements out of an HTML document with a CSS selector (Node-RED's cheerio node).

The document is parsed as a browser does (HTML5 tree construction: Lexbor through selectolax,
as cheerio uses parse5), so ``table > tbody > tr`` matches where Node-RED's does. Outputs
follow cheerio 1.0.0-rc.10 as Node-RED 5 ships it: element contents re-serialised as XML
(``<br/>``, non-ASCII as ``&#xE9;``), text without comments, scripts and styles.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, cast

from pydantic import Field, field_validator
from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    clone_msg,
    get_property,
    parse_path,
    register,
    set_property,
)

_ABSENT = object()
# jQuery's positional filters (cheerio-select) at the end of a selector: applied to the matches
_POSITIONAL = re.compile(r":(first|last|even|odd|eq|gt|lt)(?:\(\s*(-?\d+)\s*\))?\s*$")
# jQuery's :contains(text) ending a selector: a filter on the matches' text
_CONTAINS = re.compile(r""":contains\(\s*(?:"([^"]*)"|'([^']*)'|([^)]*?))\s*\)\s*$""")
_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
_XML_SPECIAL = re.compile(r"""[&<>"']|[^\x00-\x7f]""")
_SKIPPED_BY_TEXT = frozenset({"script", "style"})


class Config(NodeConfig):
    property: str = "payload"
    outproperty: str = "payload"
    tag: str = ""
    ret: Literal["html", "text", "attr", "compl", ""] = "html"
    as_: Literal["single", "multi", ""] = Field("single", alias="as")
    chr: str = "_"

    @field_validator("property", "outproperty")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        if value:
            parse_path(value)
        return value


SPEC = NodeSpec(
    type="html",
    version=1,
    category=Category.PARSER,
    inputs=1,
    outputs=1,
    label="html",
    color="#DEBD5C",
    icon="parser-html.svg",
    help="""Extracts elements from an HTML document held in `msg.payload` using a CSS selector.

### Inputs
- **payload** *string | buffer*: the HTML document (or the property named in *Property*).
- **select** *string*: the selector, when the node has none configured.

### Outputs
- **payload** *array | string | object*: what each matching element gives, as one array (one
  message) or one message per element (with **parts**, for `join`). Unchanged when the
  property is missing.

### Details
*Output*: `html` the element's contents as XML text, `text` its text (without comments,
scripts and styles), `attr` an object of its attributes, `compl` its attributes plus its
HTML contents under the name in *Property name for HTML content* (default `_`). In
multi-message mode an element with empty contents sends nothing.

Selectors are CSS level 4 (`:has()`, `:is()`, `:nth-child(2n of .x)`, attribute operators) plus
jQuery's `:contains(text)` and, at the end, `:first`, `:last`, `:eq(n)`, `:gt(n)`, `:lt(n)`,
`:even` and `:odd`. The document is parsed the way a browser parses it (missing `<tbody>`,
`<html>` and `<body>` are added).
""",
)


def _escape_xml(text: str) -> str:
    return _XML_SPECIAL.sub(
        lambda m: _XML_ESCAPES.get(m.group()) or f"&#x{ord(m.group()):X};", text
    )


def _children(node: LexborNode) -> list[LexborNode]:
    return list(node.iter(include_text=True))


def _xml(node: LexborNode, out: list[str]) -> None:
    """One node as cheerio's ``.xml()`` writes it."""
    if node.is_text_node:
        out.append(_escape_xml(node.text_content or ""))
        return
    if node.is_comment_node:
        out.append(node.html or "")  # verbatim, as XML writes comments
        return
    if not node.is_element_node:
        return
    tag = node.tag or ""
    attributes = "".join(
        f' {name}="{_escape_xml(value or "")}"' for name, value in node.attributes.items()
    )
    children = _children(node)
    if not children:
        out.append(f"<{tag}{attributes}/>")
        return
    out.append(f"<{tag}{attributes}>")
    for child in children:
        _xml(child, out)
    out.append(f"</{tag}>")


def inner_xml(node: LexborNode) -> str:
    out: list[str] = []
    for child in _children(node):
        _xml(child, out)
    return "".join(out).strip()


def text_of(node: LexborNode) -> str:
    """cheerio rc.10's ``.text()``: text nodes below, not comments, scripts or styles."""
    if node.is_text_node:
        return node.text_content or ""
    if not node.is_element_node or node.tag in _SKIPPED_BY_TEXT:
        return ""
    return "".join(text_of(child) for child in _children(node))


def attributes_of(node: LexborNode) -> dict[str, str]:
    return {name: value or "" for name, value in node.attributes.items()}


def _positional(matches: list[LexborNode], name: str, number: int | None) -> list[LexborNode]:
    if name in ("eq", "gt", "lt") and number is None:
        raise NodeFailed(f"html: :{name}() needs a number")
    n = number or 0
    if name == "first":
        return matches[:1]
    if name == "last":
        return matches[-1:]
    if name == "even":
        return matches[0::2]
    if name == "odd":
        return matches[1::2]
    if name == "eq":
        index = n if n >= 0 else len(matches) + n
        return [matches[index]] if 0 <= index < len(matches) else []
    if name == "gt":
        return matches[n + 1 :] if n >= 0 else matches[len(matches) + n + 1 :]
    return matches[:n] if n >= 0 else matches[: len(matches) + n]


def select(document: LexborHTMLParser, selector: str) -> list[LexborNode]:
    """The elements ``selector`` matches, in document order (no selector: none)."""
    selector = selector.strip()
    position = _POSITIONAL.search(selector)
    if position:
        selector = selector[: position.start()].strip() or "*"
    needles: list[str] = []
    while contains := _CONTAINS.search(selector):
        needles.append(next(g for g in contains.groups() if g is not None))
        selector = selector[: contains.start()].strip() or "*"
    if ":contains(" in selector:
        raise NodeFailed("html: :contains() is supported at the end of a selector only")
    if not selector:
        return []
    try:
        matches = list(document.css(selector))
    except SelectolaxError:
        raise NodeFailed(f"html: invalid selector {selector!r}") from None
    if needles:
        matches = [m for m in matches if all(n in (m.text() or "") for n in needles)]
    if position:
        number = position.group(2)
        matches = _positional(matches, position.group(1), int(number) if number else None)
    return matches


@register
class HtmlNode(Node):
    """Extract elements of an HTML document with a CSS selector."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        config = cast(Config, config)
        self.property = parse_path(config.property or "payload")
        self.outproperty = parse_path(config.outproperty or config.property or "payload")
        self.tag = config.tag
        self.ret = config.ret or "html"
        self.multi = config.as_ == "multi"
        self.chr = config.chr or "_"

    def _result(self, element: LexborNode) -> Any:
        if self.ret == "html":
            return inner_xml(element)
        if self.ret == "text":
            return text_of(element)
        if self.ret == "attr":
            return attributes_of(element)
        return {self.chr: (element.inner_html or "").strip(), **attributes_of(element)}

    def on_message(self, msg: Msg) -> None:
        value = get_property(msg, self.property, _ABSENT)
        if value is _ABSENT:
            self.send(msg)
            return
        selector = self.tag
        if not selector and isinstance(msg.get("select"), str):
            selector = msg["select"]
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", errors="replace")
        if not isinstance(value, str):
            kind = "null" if value is None else type(value).__name__
            raise NodeFailed(f"html: expected a string or a buffer of HTML, got {kind}")
        matches = select(LexborHTMLParser(value), selector) if selector else []
        if not self.multi:
            set_property(msg, self.outproperty, [self._result(e) for e in matches])
            self.send(msg)
            return
        for index, element in enumerate(matches):
            result = self._result(element)
            if result == "":  # Node-RED sends only what is truthy ({} is)
                continue
            out = clone_msg(msg)
            set_property(out, self.outproperty, result)
            out["parts"] = {
                "id": msg.get("_msgid"),
                "index": index,
                "count": len(matches),
                "type": "string",
                "ch": "",
            }
            self.send(out)
