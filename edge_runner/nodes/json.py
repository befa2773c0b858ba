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
  message is reported as an error with `msg.schemaError` holding the validation errors.

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
                raise NodeFailed(f"Error compiling JSON schema: {exc.message}") from exc
            self._validator = cls(schema)
            self._schema_key = key
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))
        if errors:
            msg["schemaError"] = [
                {
                    "instancePath": "/" + "/".join(str(p) for p in e.path) if e.path else "",
                    "keyword": e.validator,
                    "message": e.message,
                }
                for e in errors
            ]
            text = ", ".join(f"data{''.join(f'/{p}' for p in e.path)} {e.message}" for e in errors)
            raise NodeFailed(f"JSON Schema validation failed: {text}")
        msg.pop("schema", None)
