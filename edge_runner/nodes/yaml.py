"""The ``yaml`` node: convert a message property between a YAML string and an object."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
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
from edge_runner.nodes._parser import MISSING, take_property, utf8_text

# Documents larger than this are refused: a YAML "billion laughs" alias bomb stays cheap to
# reject, and a device has no business parsing many megabytes of YAML in one message.
MAX_TEXT = 8 * 1024 * 1024


class Config(NodeConfig):
    property: str = "payload"
    propertyOut: str = ""  # noqa: N815  # Node-RED's field name

    @field_validator("property", "propertyOut")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        if value:
            parse_path(value)
        return value


SPEC = NodeSpec(
    type="yaml",
    version=1,
    category=Category.PARSER,
    inputs=1,
    outputs=1,
    label="yaml",
    color="#DEBD5C",
    icon="parser-yaml.svg",
    help="""Converts between a YAML string and its object representation.

### Inputs
- **payload** *object | string | bytes*: a YAML document (text or UTF-8 bytes) or an object
  (or the property named in *Property*).

### Outputs
- **payload** *object | string*: the parsed object, or the YAML text of the object.

### Details
Parsing uses YAML's safe schema (no custom tags, no code). Timestamps become ISO 8601 strings
so the result stays JSON-safe. A document that cannot be parsed raises a catchable error
and nothing is sent; a message without the property is passed on unchanged.
""",
)


# Aliases let a small document describe a huge tree ("billion laughs"); every consumer
# downstream expands it, so the expanded size is bounded here.
MAX_NODES = 1_000_000


def _json_safe(value: Any, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise NodeFailed(f"YAML document expands to more than {MAX_NODES} values (alias bomb?)")
    if isinstance(value, dict):
        return {
            k if isinstance(k, str) else str(k): _json_safe(v, budget) for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v, budget) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, dt.date):
        return value.isoformat() + "T00:00:00.000Z"
    return value


@lru_cache(maxsize=1)
def _loader() -> Any:
    import re

    import yaml

    class CoreLoader(yaml.SafeLoader):
        """YAML 1.2 booleans like js-yaml: ``on``/``yes``/``off``/``no`` stay strings."""

    CoreLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    CoreLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    return CoreLoader


@lru_cache(maxsize=1)
def _dumper() -> Any:
    import yaml  # lazily: the engine imports every node module at startup

    class BlockDumper(yaml.SafeDumper):
        """Indents sequences inside mappings, as js-yaml (Node-RED) does."""

        def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
            return super().increase_indent(flow, False)

    BlockDumper.add_representer(bytes, lambda d, v: d.represent_list(list(v)))
    return BlockDumper


def load(text: str) -> Any:
    import yaml

    if len(text) > MAX_TEXT:
        raise NodeFailed(f"YAML document too large ({len(text)} characters, limit {MAX_TEXT})")
    try:
        document = yaml.load(text, Loader=_loader())  # noqa: S506  # CoreLoader is a SafeLoader
        return _json_safe(document, [MAX_NODES])
    except yaml.YAMLError as exc:
        raise NodeFailed(f"Invalid YAML: {exc}") from exc
    except RecursionError as exc:
        raise NodeFailed("Invalid YAML: nested too deeply") from exc


def dump(value: Any) -> str:
    import yaml

    try:
        return yaml.dump(
            value, Dumper=_dumper(), sort_keys=False, allow_unicode=True, default_flow_style=False
        )
    except yaml.YAMLError as exc:
        raise NodeFailed(f"Cannot convert the value to YAML: {exc}") from exc


@register
class YamlNode(Node):
    """Parse a YAML string into an object, or turn an object into YAML text."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        config = cast(Config, config)
        self.path = parse_path(config.property)
        self.out_path = parse_path(config.propertyOut or config.property)

    def on_message(self, msg: Msg) -> None:
        value = take_property(self, msg, self.path)
        if value is MISSING:
            return
        if isinstance(value, (bytes, bytearray)):
            value = utf8_text(value, "YAML")
        if isinstance(value, str):
            set_property(msg, self.out_path, load(value))
        elif isinstance(value, (dict, list)):
            set_property(msg, self.out_path, dump(value))
        else:
            self.warn("Ignored non-object payload")
            return
        self.send(msg)
