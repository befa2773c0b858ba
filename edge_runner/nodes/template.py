"""The ``template`` node: render a mustache (or plain) template into a property.

The mustache renderer is written here (spec-compliant subset used by Node-RED: variables,
triple/ampersand unescaped variables, sections, inverted sections, comments, delimiter changes,
standalone-line stripping; partials render empty) so the runner needs no extra dependency. It
follows mustache.js, which Node-RED uses: ``{{x}}`` is HTML-escaped, ``{{{x}}}`` is not, names
missing from the message fall back to ``flow.*`` / ``global.*`` context and ``env.*``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeFailed, NodeSpec, register
from edge_runner.nodes._sequence import UNDEFINED, compile_path, js_string, set_path

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi

# --------------------------------------------------------------------------- mustache

# A token is ("text", str) | ("var", name, escaped) | ("section", name, children, inverted).
Token = tuple[Any, ...]

_HTML_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&#39;",
        "/": "&#x2F;",
        "`": "&#x60;",
        "=": "&#x3D;",
    }
)
_STANDALONE_KINDS = frozenset("#^/!>=")


class TemplateError(ValueError):
    """The template text is not valid mustache."""


@lru_cache(maxsize=128)
def parse_mustache(template: str) -> tuple[Token, ...]:
    """Parse ``template`` into a token tree (cached: templates repeat)."""
    otag, ctag = "{{", "}}"
    root: list[Token] = []
    stack: list[tuple[str | None, list[Token]]] = [(None, root)]
    pos = 0
    while True:
        start = template.find(otag, pos)
        if start < 0:
            if pos < len(template):
                stack[-1][1].append(("text", template[pos:]))
            break
        inner = start + len(otag)
        if otag == "{{" and template.startswith("{", inner):
            end = template.find("}" + ctag, inner)
            if end < 0:
                raise TemplateError(f"unclosed tag at {start}")
            kind, name, tag_end = "&", template[inner + 1 : end].strip(), end + 1 + len(ctag)
        else:
            end = template.find(ctag, inner)
            if end < 0:
                raise TemplateError(f"unclosed tag at {start}")
            content = template[inner:end].strip()
            tag_end = end + len(ctag)
            if content[:1] in ("#", "^", "/", "!", ">", "&", "="):
                kind, name = content[0], content[1:].strip()
                if kind == "=":
                    name = name[:-1].strip() if name.endswith("=") else name
            else:
                kind, name = "name", content
        text_end = start
        if kind in _STANDALONE_KINDS:
            line_start = template.rfind("\n", 0, start) + 1
            newline = template.find("\n", tag_end)
            line_end = newline if newline >= 0 else len(template)
            if (
                line_start >= pos
                and not template[line_start:start].strip(" \t")
                and not template[tag_end:line_end].strip(" \t\r")
            ):
                text_end = line_start
                tag_end = newline + 1 if newline >= 0 else len(template)
        if text_end > pos:
            stack[-1][1].append(("text", template[pos:text_end]))
        pos = tag_end
        if kind == "name" or kind == "&":
            stack[-1][1].append(("var", name, kind == "name"))
        elif kind in ("#", "^"):
            children: list[Token] = []
            stack[-1][1].append(("section", name, children, kind == "^"))
            stack.append((name, children))
        elif kind == "/":
            if len(stack) == 1 or stack[-1][0] != name:
                raise TemplateError(f"unopened section {name!r} at {start}")
            stack.pop()
        elif kind == "=":
            delimiters = name.split()
            if len(delimiters) != 2:
                raise TemplateError(f"invalid delimiters {name!r}")
            otag, ctag = delimiters
    if len(stack) > 1:
        raise TemplateError(f"unclosed section {stack[-1][0]!r}")
    return _freeze(root)


def _freeze(tokens: list[Token]) -> tuple[Token, ...]:
    return tuple(("section", t[1], _freeze(t[2]), t[3]) if t[0] == "section" else t for t in tokens)


def _child(value: Any, key: str) -> tuple[bool, Any]:
    if isinstance(value, dict):
        return (key in value), value.get(key, UNDEFINED)
    if isinstance(value, (list, str, bytes)):
        if key == "length":
            return True, len(value)
        if key.isdigit() and int(key) < len(value):
            return True, value[int(key)]
    return False, UNDEFINED


def _truthy(value: Any) -> bool:
    if value is UNDEFINED or value is None or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == value and value != 0
    return True


class _Renderer:
    """Renders a token tree against a context stack with Node-RED's fallbacks."""

    def __init__(self, fallback: Callable[[str], Any], escape_strings: bool) -> None:
        self.fallback = fallback
        self.escape_strings = escape_strings

    def lookup(self, name: str, stack: list[Any]) -> Any:
        if name == ".":
            return stack[-1]
        names = name.split(".")
        for depth in range(len(stack) - 1, -1, -1):
            value = stack[depth]
            hit = False
            for i, part in enumerate(names):
                found, value = _child(value, part)
                if i == len(names) - 1:
                    hit = found
                if value is UNDEFINED or value is None:
                    break
            if hit:
                if self.escape_strings and depth == 0 and isinstance(value, str):
                    value = _json_escape(value)
                return value
        return self.fallback(name)

    def render(self, tokens: tuple[Token, ...], stack: list[Any], out: list[str]) -> None:
        for token in tokens:
            kind = token[0]
            if kind == "text":
                out.append(token[1])
            elif kind == "var":
                value = self.lookup(token[1], stack)
                if value is UNDEFINED or value is None:
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out.append(js_string(value))
                else:
                    text = js_string(value)
                    out.append(text.translate(_HTML_ESCAPES) if token[2] else text)
            else:
                value = self.lookup(token[1], stack)
                if token[3]:
                    if not _truthy(value) or (isinstance(value, list) and not value):
                        self.render(token[2], stack, out)
                elif isinstance(value, list):
                    for item in value:
                        stack.append(item)
                        self.render(token[2], stack, out)
                        stack.pop()
                elif _truthy(value):
                    stack.append(value)
                    self.render(token[2], stack, out)
                    stack.pop()


def _json_escape(text: str) -> str:
    """What Node-RED does to strings rendered into a template whose output is parsed as JSON."""
    return (
        text.replace("\\", "\\\\")
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("\r", "\\r")
        .replace("\f", "\\f")
        .replace("\b", "\\b")
    )


_CONTEXT_NAME = re.compile(r"^(flow|global)(\[(\w+)\])?\.(.+)")


# --------------------------------------------------------------------------- node


class Config(NodeConfig):
    field: str = "payload"
    fieldType: Literal["msg", "flow", "global"] = "msg"  # noqa: N815
    format: str = "handlebars"  # the editor's highlighting mode only
    syntax: Literal["mustache", "plain"] = "mustache"
    template: str = ""
    output: Literal["str", "json", "yaml"] = "str"

    @model_validator(mode="after")
    def _check(self) -> Config:
        if not (self.field or "payload").strip():
            raise ValueError("field must name a property")
        if self.fieldType == "msg":
            compile_path(self.field or "payload")
        if self.syntax == "mustache" and self.template:
            try:
                parse_mustache(self.template)
            except TemplateError as exc:
                raise ValueError(f"invalid mustache template: {exc}") from exc
        return self


SPEC = NodeSpec(
    type="template",
    version=1,
    category=Category.FUNCTION,
    inputs=1,
    outputs=1,
    label="template",
    color="rgb(243, 181, 103)",
    icon="template.svg",
    help="""Sets a property based on the provided template.

### Inputs
- **msg** *object*: the message whose properties fill the template.
- **template** *string*: used as the template when the node's own template is empty.

### Outputs
- **msg** *object*: the message with the rendered text in *Property* (or flow/global context).

### Details
With the *Mustache* syntax, `{{payload}}` or `{{payload.name}}` insert message properties,
`{{flow.name}}` / `{{global.name}}` context values and `{{env.NAME}}` environment variables.
`{{x}}` HTML-escapes the value; use `{{{x}}}` (or `{{& x}}`) to insert it unescaped.
Sections `{{#list}}...{{/list}}` repeat for arrays and `{{^x}}...{{/x}}` renders when `x` is
missing or empty. *Plain text* copies the template unchanged.

*Output as* parsed JSON or YAML turns the rendered text into an object; text that does not
parse raises a catchable error and nothing is sent.
""",
)

TemplateConfig = Config  # the node class's ``Config`` attribute shadows the name inside it


@register
class TemplateNode(Node):
    """Render a mustache or plain template into a message property or context."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, TemplateConfig):
            raise TypeError("template node needs its own Config")
        self.cfg = config
        # a flow/global field is a context key, possibly "#:(store)::key", not a msg path
        self.field_parts = (
            compile_path(config.field or "payload") if config.fieldType == "msg" else []
        )
        self.renderer = _Renderer(self._fallback, config.output == "json")

    def on_message(self, msg: Msg) -> None:
        template = self.cfg.template
        if not template and "template" in msg:
            template = msg["template"]
            if template is None:
                template = ""
            if not isinstance(template, str):
                raise NodeFailed("msg.template must be a string")
        if self.cfg.syntax == "mustache":
            try:
                tokens = parse_mustache(template)
            except TemplateError as exc:
                raise NodeFailed(f"invalid mustache template: {exc}") from exc
            out: list[str] = []
            self.renderer.render(tokens, [msg], out)
            value: Any = "".join(out)
        else:
            value = template
        value = self._convert(value)
        if self.cfg.fieldType == "msg":
            set_path(msg, self.field_parts, value)
        else:
            context = self.rt.flow if self.cfg.fieldType == "flow" else self.rt.global_
            context.set(self.cfg.field, value)
        self.send(msg)

    def _convert(self, text: str) -> Any:
        if self.cfg.output == "json":
            try:
                return json.loads(text)
            except ValueError as exc:
                raise NodeFailed(f"Rendered template is not valid JSON: {exc}") from exc
        if self.cfg.output == "yaml":
            import yaml  # lazily: most flows never ask for YAML output

            try:
                return yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise NodeFailed(f"Rendered template is not valid YAML: {exc}") from exc
        return text

    def _fallback(self, name: str) -> Any:
        match = _CONTEXT_NAME.match(name)
        if match:
            context = self.rt.flow if match.group(1) == "flow" else self.rt.global_
            value = context.get(match.group(4), None, match.group(3))
            return "" if value is None else value
        if name.startswith("env."):
            value = self.rt.env(name[4:])
            return "" if value is None else value
        return ""
