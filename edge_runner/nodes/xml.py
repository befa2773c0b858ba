"""The ``xml`` node: convert between XML text and the object form Node-RED (xml2js) uses.

Parsing mirrors xml2js's defaults: the root element is the single key of the result; every
child element is an array (repeated elements collect there); attributes sit under ``$`` and
text under ``_`` (both keys configurable); an element with only text becomes that string and
an empty element an empty string. Qualified names (``ns:tag``) and ``xmlns`` attributes are
kept as written. Documents that declare entities are refused (no entity expansion attacks).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, cast

from pydantic import field_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    parse_path,
    register,
    set_property,
)
from edge_runner.nodes._parser import MISSING, payload_path, take_property

MAX_TEXT = 16 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z_:\u00C0-\uFFFF][\w.\-:\u00B7\u00C0-\uFFFF]*$")
_WHITESPACE = re.compile(r"^\s*$")


class Config(NodeConfig):
    property: str = "payload"
    attr: str = ""
    chr: str = ""

    @field_validator("property")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        return payload_path(value)


SPEC = NodeSpec(
    type="xml",
    version=1,
    category=Category.PARSER,
    inputs=1,
    outputs=1,
    label="xml",
    color="#DEBD5C",
    icon="parser-xml.svg",
    help="""Converts between an XML string and its object representation.

### Inputs
- **payload** *object | string | bytes*: XML text (or UTF-8 bytes), or an object to render.
- **options** *object* (optional): xml2js-style options: `attrkey`, `charkey`,
  `explicitArray`, `explicitRoot`, `trim` when parsing; `rootName`, `headless`, `renderOpts`
  (`pretty`, `indent`, `newline`) when building.

### Outputs
- **payload** *object | string*: the parsed object, or the XML text.

### Details
`<p class="x">hi<b>1</b><b>2</b></p>` becomes
`{"p": {"$": {"class": "x"}, "_": "hi", "b": ["1", "2"]}}`: attributes under *Property for
attributes* (default `$`), text under *Property for text* (default `_`), child elements
always in arrays. An element holding only text becomes that string. When rendering, the
same keys are read back; output starts with an XML declaration unless `headless` is set.
Malformed XML (or a document declaring entities) raises a catchable error and nothing is
sent.
""",
)


# ------------------------------------------------------------------------------ parsing


class _Parser:
    def __init__(self, attrkey: str, charkey: str, explicit_array: bool, trim: bool) -> None:
        self.attrkey = attrkey
        self.charkey = charkey
        self.explicit_array = explicit_array
        self.trim = trim
        self.stack: list[tuple[str, dict[str, Any], list[str]]] = []
        self.result: dict[str, Any] | None = None

    def start(self, name: str, attrs: dict[str, str]) -> None:
        obj: dict[str, Any] = {}
        if attrs:
            obj[self.attrkey] = dict(attrs)
        self.stack.append((name, obj, []))

    def text(self, data: str) -> None:
        if self.stack:
            self.stack[-1][2].append(data)

    def end(self, name: str) -> None:
        _, obj, chunks = self.stack.pop()
        text = "".join(chunks)
        value: Any = obj
        if _WHITESPACE.match(text):
            empty = text
        else:
            obj[self.charkey] = text.strip() if self.trim else text
            empty = ""
        if not obj:
            value = empty
        elif len(obj) == 1 and self.charkey in obj:
            value = obj[self.charkey]
        if self.stack:
            parent = self.stack[-1][1]
            if self.explicit_array:
                parent.setdefault(name, []).append(value)
            elif name in parent:
                existing = parent[name]
                parent[name] = (
                    [*existing, value] if isinstance(existing, list) else [existing, value]
                )
            else:
                parent[name] = value
        else:
            self.result = {name: value}


def _refuse_entities(*_args: Any) -> int:
    raise NodeFailed("XML documents that declare entities are not accepted")


def parse_xml(text: str | bytes, options: dict[str, Any]) -> Any:
    from xml.parsers import expat  # lazily: only flows with an xml node pay for it

    if len(text) > MAX_TEXT:
        raise NodeFailed(f"XML document too large ({len(text)} bytes, limit {MAX_TEXT})")
    state = _Parser(
        str(options.get("attrkey") or "$"),
        str(options.get("charkey") or "_"),
        options.get("explicitArray", True) is not False,
        options.get("trim", False) is True,
    )
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = state.start
    parser.EndElementHandler = state.end
    parser.CharacterDataHandler = state.text
    parser.EntityDeclHandler = _refuse_entities
    parser.ExternalEntityRefHandler = _refuse_entities
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise NodeFailed(
            f"Invalid XML: {expat.ErrorString(exc.code)} "
            f"at line {exc.lineno}, column {exc.offset + 1}"
        ) from exc
    if state.result is None:
        raise NodeFailed("Invalid XML: no root element")
    if options.get("explicitRoot", True) is False:
        return next(iter(state.result.values()))
    return state.result


# ------------------------------------------------------------------------------ building


def _escape_text(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")
    )


def _escape_attr(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace('"', "&quot;")
        .replace("\t", "&#x9;")
        .replace("\n", "&#xA;")
        .replace("\r", "&#xD;")
    )


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Builder:
    def __init__(self, attrkey: str, charkey: str, pretty: bool, indent: str, newline: str) -> None:
        self.attrkey = attrkey
        self.charkey = charkey
        self.pretty = pretty
        self.indent = indent
        self.newline = newline if pretty else ""
        self.out: list[str] = []

    def element(self, name: str, value: Any, depth: int) -> None:
        if not _NAME.match(name):
            raise NodeFailed(f"Invalid XML element name {name!r}")
        pad = self.indent * depth if self.pretty else ""
        attrs = ""
        text = ""
        children: list[tuple[str, Any]] = []
        if isinstance(value, dict):
            for key, child in value.items():
                if key == self.attrkey and isinstance(child, dict):
                    for attr, attr_value in child.items():
                        if not _NAME.match(attr):
                            raise NodeFailed(f"Invalid XML attribute name {attr!r}")
                        attrs += f' {attr}="{_escape_attr(_scalar(attr_value))}"'
                elif key == self.charkey:
                    text += _scalar(child)
                elif isinstance(child, list):
                    children.extend((key, entry) for entry in child)
                else:
                    children.append((key, child))
        elif isinstance(value, list):
            for entry in value:
                if isinstance(entry, dict):
                    children.extend(entry.items())
        else:
            text = _scalar(value)
        if not text and not children:
            self.out.append(f"{pad}<{name}{attrs}/>{self.newline}")
            return
        if not children:
            self.out.append(f"{pad}<{name}{attrs}>{_escape_text(text)}</{name}>{self.newline}")
            return
        self.out.append(f"{pad}<{name}{attrs}>{_escape_text(text)}{self.newline}")
        for child_name, child in children:
            self.element(child_name, child, depth + 1)
        self.out.append(f"{pad}</{name}>{self.newline}")


def build_xml(value: Any, options: dict[str, Any]) -> str:
    render_opts = options.get("renderOpts")
    render: dict[str, Any] = render_opts if isinstance(render_opts, dict) else {}
    builder = _Builder(
        str(options.get("attrkey") or "$"),
        str(options.get("charkey") or "_"),
        render.get("pretty", False) is True,
        str(render.get("indent", "  ")),
        str(render.get("newline", "\n")),
    )
    root_name = options.get("rootName")
    if isinstance(value, dict) and len(value) == 1 and not root_name:
        name, body = next(iter(value.items()))
    else:
        name, body = str(root_name or "root"), value
    try:
        builder.element(str(name), body, 0)
    except RecursionError as exc:
        raise NodeFailed("Cannot convert to XML: object nested too deeply") from exc
    xml = "".join(builder.out)
    if builder.pretty:
        xml = xml.rstrip(builder.newline)
    if options.get("headless") is True:
        return xml
    declaration = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    return declaration + builder.newline + xml


@register
class XmlNode(Node):
    """Parse XML text into an object, or render an object as XML text."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        config = cast(Config, config)
        self.path = parse_path(config.property)
        self.attrkey = config.attr
        self.charkey = config.chr

    def _options(self, msg: Msg) -> dict[str, Any]:
        given = msg.get("options")
        options = dict(given) if isinstance(given, dict) else {}
        options["attrkey"] = self.attrkey or options.get("attrkey") or "$"
        options["charkey"] = self.charkey or options.get("charkey") or "_"
        return options

    def on_message(self, msg: Msg) -> None:
        value = take_property(self, msg, self.path)
        if value is MISSING:
            return
        if isinstance(value, (str, bytes, bytearray)):
            result = parse_xml(
                value if isinstance(value, str) else bytes(value), self._options(msg)
            )
        elif isinstance(value, (dict, list)):
            result = build_xml(value, self._options(msg))
        else:
            self.warn("This node only handles xml strings or js objects.")
            return
        set_property(msg, self.path, result)
        self.send(msg)
