"""The ``json`` node: convert a message property between a JSON string and an object."""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar, Literal, cast

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
from edge_runner.nodes._parser import MISSING, payload_path, take_property, utf8_text


class Config(NodeConfig):
    action: Literal["", "str", "obj"] = ""
    property: str = "payload"
    pretty: bool = False

    @field_validator("property")
    @classmethod
    def _valid_property(cls, value: str) -> str:
        return payload_path(value)


SPEC = NodeSpec(
    type="json",
    version=1,
    category=Category.PARSER,
    inputs=1,
    outputs=1,
    label="json",
    color="#DEBD5C",
    icon="parser-json.svg",
    help="""Converts between a JSON string and its object representation.

### Inputs
- **payload** *object | string | bytes*: the value to convert (or the property named in
  *Property*).
- **schema** *object* (optional): a JSON Schema the value is validated against; on failure the
  message is reported as an error (`JSON Schema error: data/price must be number`, ajv's
  words as in Node-RED) with `msg.schemaError` holding the validation errors.

### Outputs
- **payload** *object | string*: the converted value.

### Details
*Action* `""` converts in both directions: a string (or UTF-8 bytes) is parsed into an object,
anything else is serialised to a string. `str` always gives a string, `obj` always an object.
*Format JSON string* indents the output by 4 spaces. Invalid JSON raises a catchable error and
nothing is sent. A message without the property is passed on unchanged.
""",
)


def _js_safe(value: Any) -> Any:
    """What ``JSON.stringify`` would see: NaN/Infinity become null, bytes a Buffer object."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _js_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_js_safe(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"type": "Buffer", "data": list(value)}
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Unexpected token {name!r}: not valid JSON")


# ajv's wording (Node-RED validates with ajv 8), so flows matching on the error text still match
_LIMITS = {"maximum": "<=", "minimum": ">=", "exclusiveMaximum": "<", "exclusiveMinimum": ">"}
_COUNTS = {
    "minLength": ("fewer", "characters"),
    "maxLength": ("more", "characters"),
    "minItems": ("fewer", "items"),
    "maxItems": ("more", "items"),
    "minProperties": ("fewer", "properties"),
    "maxProperties": ("more", "properties"),
}
_FIXED = {
    "enum": "must be equal to one of the allowed values",
    "const": "must be equal to constant",
    "additionalProperties": "must NOT have additional properties",
    "anyOf": "must match a schema in anyOf",
    "oneOf": "must match exactly one schema in oneOf",
    "not": "must NOT be valid",
}


# ajv checks a schema's keywords group by group: those for any value, then number, string, array
# and object ones; a single type's error comes at the end of its group (or first, for others)
_GROUPS: tuple[tuple[str, ...], ...] = (
    ("$ref", "const", "enum", "not", "anyOf", "oneOf", "allOf", "if", "then", "else"),
    ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum", "multipleOf"),
    ("maxLength", "minLength", "pattern", "format"),
    ("maxItems", "minItems", "uniqueItems", "additionalItems", "items", "contains"),
    (
        "maxProperties",
        "minProperties",
        "required",
        "propertyNames",
        "additionalProperties",
        "dependencies",
        "properties",
        "patternProperties",
    ),
)
_RANKS = {kw: (group, i) for group, kws in enumerate(_GROUPS) for i, kw in enumerate(kws)}
_TYPE_GROUPS = {"number": 1, "string": 2, "array": 3, "object": 4}
_NAMED = ("properties", "patternProperties", "dependencies", "definitions", "$defs")


def _ajv_order(schema: Any, path: list[Any]) -> list[tuple[int, int]]:
    """Where ajv reports the error at ``path`` (a schema path) among the others."""
    key: list[tuple[int, int]] = []
    node, i = schema, 0
    while i < len(path):
        keyword = path[i]
        if keyword == "type":
            kind = node.get("type") if isinstance(node, dict) else None
            group = _TYPE_GROUPS.get(kind) if isinstance(kind, str) else None
            key.append((-1, 0) if group is None else (group, len(_GROUPS[group])))
        else:
            key.append(_RANKS.get(str(keyword), (len(_GROUPS), 0)))
        child = node.get(keyword) if isinstance(node, dict) else None
        i += 1
        if i < len(path) and keyword in _NAMED and isinstance(child, dict):
            names = list(child)
            key.append((names.index(path[i]) if path[i] in names else len(names), 0))
            child, i = child.get(path[i]), i + 1
        elif i < len(path) and isinstance(path[i], int) and isinstance(child, list):
            key.append((path[i], 0))
            child, i = child[path[i]] if path[i] < len(child) else None, i + 1
        node = child
    return key


def _number_text(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _ajv_error(error: Any) -> dict[str, Any]:
    """One jsonschema ``ValidationError`` as ajv reports it in ``msg.schemaError``."""
    keyword, expected = str(error.validator), error.validator_value
    path = [str(p).replace("~", "~0").replace("/", "~1") for p in error.path]
    params: dict[str, Any] = {}
    if keyword == "type":
        types = expected if isinstance(expected, list) else [expected]
        message, params = f"must be {','.join(map(str, types))}", {"type": expected}
    elif keyword == "required":
        missing = next((r for r in expected if r not in error.instance), "")
        message = f"must have required property '{missing}'"
        params = {"missingProperty": missing}
    elif keyword in _LIMITS:
        message = f"must be {_LIMITS[keyword]} {_number_text(expected)}"
        params = {"comparison": _LIMITS[keyword], "limit": expected}
    elif keyword in _COUNTS:
        more, what = _COUNTS[keyword]
        message, params = f"must NOT have {more} than {expected} {what}", {"limit": expected}
    elif keyword == "pattern":
        message, params = f'must match pattern "{expected}"', {"pattern": expected}
    elif keyword == "format":
        message, params = f'must match format "{expected}"', {"format": expected}
    elif keyword == "multipleOf":
        message = f"must be multiple of {_number_text(expected)}"
        params = {"multipleOf": expected}
    else:
        message = _FIXED.get(keyword, error.message)
    schema_path = "/".join(str(p) for p in error.absolute_schema_path)
    return {
        "instancePath": "".join(f"/{p}" for p in path),
        "schemaPath": f"#/{schema_path}",
        "keyword": keyword,
        "params": params,
        "message": message,
    }


def _stringify(value: Any, indent: int | None) -> str:
    separators = (",", ":") if indent is None else (",", ": ")
    try:
        return json.dumps(
            value, ensure_ascii=False, allow_nan=False, indent=indent, separators=separators
        )
    except (TypeError, ValueError):
        return json.dumps(
            _js_safe(value), ensure_ascii=False, indent=indent, separators=separators, default=str
        )


def _parse(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise NodeFailed(f"Invalid JSON: {exc}") from exc


@register
class JsonNode(Node):
    """Parse a JSON string into an object, or serialise an object to a JSON string."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        config = cast(Config, config)
        self.action = config.action
        self.path = parse_path(config.property)
        self.indent = 4 if config.pretty else None
        self._schema_key: str | None = None
        self._validator: Any = None

    def on_message(self, msg: Msg) -> None:
        schema = msg.get("schema")
        value = take_property(self, msg, self.path)
        if value is MISSING:
            return
        if isinstance(value, (bytes, bytearray)) and self.action != "str":
            value = utf8_text(value, "JSON")
        if isinstance(value, str):
            if self.action == "str":
                if schema:
                    self._validate(msg, schema, _parse(value))
                self.send(msg)
                return
            parsed = _parse(value)
            if schema:
                self._validate(msg, schema, parsed)
            set_property(msg, self.path, parsed)
            self.send(msg)
            return
        if isinstance(value, (bytes, bytearray)):
            self.warn("Ignored non-object payload")
            return
        if self.action == "obj":
            if schema:
                self._validate(msg, schema, value)
            self.send(msg)
            return
        if schema:
            self._validate(msg, schema, value)
        set_property(msg, self.path, _stringify(value, self.indent))
        self.send(msg)

    def _validate(self, msg: Msg, schema: Any, value: Any) -> None:
        try:
            import jsonschema  # type: ignore[import-untyped]  # no stubs pinned; lazy: slow import
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise NodeFailed("JSON Schema validation needs the 'jsonschema' package") from exc
        key = _stringify(schema, None)
        if key != self._schema_key:
            try:
                cls = jsonschema.validators.validator_for(schema)
                cls.check_schema(schema)
            except jsonschema.SchemaError as exc:
                self._schema_key = None
                self._validator = None
                raise NodeFailed("JSON Schema error: failed to compile schema") from exc
            self._validator = cls(schema)
            self._schema_key = key
        found = self._validator.iter_errors(value)
        ordered = sorted(found, key=lambda e: _ajv_order(schema, list(e.absolute_schema_path)))
        errors = [_ajv_error(e) for e in ordered]
        if errors:
            msg["schemaError"] = errors
            text = ", ".join(f"data{e['instancePath']} {e['message']}" for e in errors)
            raise NodeFailed(f"JSON Schema error: {text}")
        msg.pop("schema", None)
