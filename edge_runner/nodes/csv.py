"""The ``csv`` node: CSV text <-> objects, Node-RED's field names and message shapes."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

from pydantic import field_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    clone_msg,
    register,
)

# Node-RED's RFC parser converts a cell with JavaScript's unary plus, except cells with a
# leading "+" or a leading zero (ids, zip codes): restated as one decimal pattern plus
# hex/octal/binary literals.
_SKIP_NUMBER = re.compile(r"^ *(\+|-0\d|0\d)")
_DECIMAL = re.compile(r"^\s*-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$")
_RADIX = re.compile(r"^\s*0([xXoObB])([0-9a-fA-F]+)\s*$")
_ESCAPES = {"\\t": "\t", "\\n": "\n", "\\r": "\r"}


def _unescape(text: str) -> str:
    for escaped, char in _ESCAPES.items():
        text = text.replace(escaped, char)
    return text


class Config(NodeConfig):
    temp: str = ""
    sep: str = ","
    quo: str = '"'
    spec: Literal["", "rfc"] = "rfc"
    hdrin: bool = False
    hdrout: Literal["none", "all", "once"] = "none"
    multi: Literal["one", "mult"] = "one"
    ret: str = "\\r\\n"
    skip: int = 0
    strings: bool = True
    include_empty_strings: bool = False
    include_null_values: bool = False

    @field_validator("hdrin", "include_empty_strings", "include_null_values", mode="before")
    @classmethod
    def _blank_is_false(cls, value: Any) -> Any:
        return False if value in ("", None) else value

    @field_validator("hdrout", mode="before")
    @classmethod
    def _legacy_hdrout(cls, value: Any) -> Any:
        # Flows from Node-RED < 1.0 stored a checkbox here.
        if value is True:
            return "all"
        if value in (False, "", None):
            return "none"
        return value

    @field_validator("skip", mode="before")
    @classmethod
    def _skip_number(cls, value: Any) -> Any:
        if value in ("", None):
            return 0
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value

    @field_validator("skip")
    @classmethod
    def _skip_not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("skip must be 0 or more lines")
        return value

    @field_validator("sep")
    @classmethod
    def _one_separator(cls, value: str) -> str:
        if len(_unescape(value or ",")) != 1:
            raise ValueError(f"separator must be a single character, not {value!r}")
        return value

    @field_validator("quo")
    @classmethod
    def _one_quote(cls, value: str) -> str:
        if len(value or '"') != 1:
            raise ValueError(f"quote must be a single character, not {value!r}")
        return value

    @field_validator("ret")
    @classmethod
    def _line_ending(cls, value: str) -> str:
        if _unescape(value or "\n") not in ("\n", "\r", "\r\n"):
            raise ValueError(f"line ending must be \\n, \\r or \\r\\n, not {value!r}")
        return value


SPEC = NodeSpec(
    type="csv",
    version=1,
    category=Category.PARSER,
    inputs=1,
    outputs=1,
    label="csv",
    color="#DEBD5C",
    icon="parser-csv.svg",
    help="""Converts between CSV text and objects (RFC 4180 quoting).

### Inputs
- **payload** *string | bytes*: CSV text to parse, or
- **payload** *object | array*: an object, an array of objects, an array of arrays (rows) or
  an array of values (one row) to render as CSV.
- **columns** *string* (optional): column names to use when *Columns* is empty.
- **reset** *any*: makes *send headers once* send them again.
- **parts**: when the text arrives line by line (from *split* or *file in*), the header line,
  skipped lines and the last part are tracked across messages.

### Outputs
- **payload**: one object per row (*multi* `one`, with `msg.parts` so a *join* can rebuild
  the array), or an array of row objects (`mult`); or the CSV text.
- **columns** *string*: the column names, comma separated and quoted where needed.

### Details
*Columns* (`temp`) names the columns; empty columns are skipped; without names they are
`col1`, `col2`, ... *First row contains column names* (`hdrin`) takes them from the data.
*skip* drops that many lines first. *Parse numerical values* (`strings`) turns numeric cells
into numbers (but keeps leading `+` and leading zeros as text). Empty cells are left out
unless *include empty strings* (`""`) or *include null values* (a cell with nothing at all)
is set. When rendering, *hdrout* sends the header line never (`none`), with every message
(`all`) or once until `msg.reset` (`once`); *ret* is the line ending. A cell holding the
separator, a quote or a line break is quoted, inner quotes doubled. Text with an unclosed
quote raises a catchable error and nothing is sent.
""",
)


# ------------------------------------------------------------------------------ parsing


@dataclass
class Cell:
    text: str
    quoted: bool


def tokenize(text: str, sep: str, quote: str) -> list[list[Cell]]:
    """Split CSV text into rows of cells (RFC 4180; any of \\r\\n, \\n, \\r ends a row)."""
    rows: list[list[Cell]] = []
    row: list[Cell] = []
    buf: list[str] = []
    quoted = False
    in_quote = False
    started = False  # the current cell has any character (or quotes) at all
    i, n = 0, len(text)
    line = 1
    quote_line = 0
    while i < n:
        char = text[i]
        if in_quote:
            if char == quote:
                if i + 1 < n and text[i + 1] == quote:
                    buf.append(quote)
                    i += 2
                    continue
                in_quote = False
            else:
                if char == "\n":
                    line += 1
                buf.append(char)
            i += 1
            continue
        if char == sep:
            row.append(Cell("".join(buf), quoted))
            buf, quoted, started = [], False, False
        elif char == quote and not started:
            in_quote = quoted = started = True
            quote_line = line
        elif char in "\r\n":
            if started or row:
                row.append(Cell("".join(buf), quoted))
                rows.append(row)
            row, buf, quoted, started = [], [], False, False
            if char == "\r" and i + 1 < n and text[i + 1] == "\n":
                i += 1
            line += 1
        else:
            # A quote in the middle of an unquoted cell is kept as text (lenient, like
            # Node-RED's non-strict parser).
            buf.append(char)
            started = True
        i += 1
    if in_quote:
        raise NodeFailed(f"Malformed CSV: quote opened on line {quote_line} is never closed")
    if started or row:
        row.append(Cell("".join(buf), quoted))
        rows.append(row)
    return rows


def to_number(text: str) -> int | float | None:
    if not text or _SKIP_NUMBER.match(text):
        return None
    if _DECIMAL.match(text):
        stripped = text.strip()
        if re.fullmatch(r"-?\d+", stripped):
            return int(stripped)
        number = float(stripped)
        return number if math.isfinite(number) else None
    radix = _RADIX.match(text)
    if radix:
        base = {"x": 16, "o": 8, "b": 2}[radix.group(1).lower()]
        try:
            return int(radix.group(2), base)
        except ValueError:
            return None
    return None


def clean_names(text: str, sep: str, quote: str) -> list[str]:
    """Column names from a template or header line: split, unquote, trim."""
    rows = tokenize(text.strip(), sep, quote)
    names = [cell.text.strip() for cell in rows[0]] if rows else []
    if len(names) == 1 and sep != "," and "," in names[0]:
        names = [cell.text.strip() for cell in tokenize(text.strip(), ",", quote)[0]]
    return names


# ------------------------------------------------------------------------------ rendering


def js_string(value: Any) -> str:
    """``String(value)`` as JavaScript would print a cell (objects as JSON)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return (
            repr(value)
            if math.isfinite(value)
            else ("NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity"))
        )
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def quote_cell(text: str, sep: str, quote: str) -> str:
    if quote in text:
        return quote + text.replace(quote, quote + quote) + quote
    if sep in text or "\n" in text or "\r" in text:
        return quote + text + quote
    return text


def columns_text(names: list[str], quote: str) -> str:
    return ",".join(quote_cell(name, ",", quote) for name in names if name)


@register
class CsvNode(Node):
    """Parse CSV text into row objects, or render objects and arrays as CSV text."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)
        self.sep = _unescape(self.cfg.sep or ",")
        self.quote = self.cfg.quo or '"'
        self.ret = _unescape(self.cfg.ret or "\n")
        self.template = clean_names(self.cfg.temp, self.sep, self.quote) if self.cfg.temp else []
        self.header_sent = False
        self.stream_header: list[str] | None = None  # header line of a parts stream
        self.store: list[dict[str, Any]] = []  # rows of a parts stream in "mult" mode
        self.warned_no_template = False

    def on_message(self, msg: Msg) -> None:
        if "reset" in msg:
            self.header_sent = False
        if "payload" not in msg:
            if "reset" not in msg:
                self.send(msg)
            return
        payload = msg["payload"]
        if isinstance(payload, (bytes, bytearray)):
            try:
                payload = bytes(payload).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise NodeFailed(f"CSV bytes are not UTF-8 text ({exc})") from exc
        if isinstance(payload, str):
            self._parse(msg, payload)
        elif isinstance(payload, (dict, list)):
            self._render(msg, payload)
        else:
            self.warn("This node only handles CSV strings or js objects.")

    # ------------------------------------------------------------------ text -> objects
    def _row_object(self, cells: list[Cell], names: list[str]) -> dict[str, Any]:
        cfg = self.cfg
        out: dict[str, Any] = {}
        for j, cell in enumerate(cells):
            if names:
                if j >= len(names) or not names[j]:
                    continue
                name = names[j]
            else:
                name = f"col{j + 1}"
            value: Any = cell.text
            if value == "" and not cell.quoted:
                if cfg.include_null_values:
                    out[name] = None
                continue
            if value == "":
                if cfg.include_empty_strings:
                    out[name] = ""
                continue
            if cfg.strings:
                number = to_number(value)
                if number is not None:
                    value = number
            out[name] = value
        return out

    def _parse(self, msg: Msg, text: str) -> None:
        cfg = self.cfg
        given = msg.get("parts")
        parts: dict[str, Any] = given if isinstance(given, dict) else {}
        index = parts.get("index")
        streaming = isinstance(index, int) and not isinstance(index, bool)
        rows = tokenize(text, self.sep, self.quote)
        names = self.template
        last = False
        if streaming:
            count = parts.get("count")
            last = isinstance(count, int) and cast(int, index) + 1 >= count
            if index == 0:
                self.stream_header, self.store = None, []
            if cast(int, index) < cfg.skip:
                rows = []
            elif cfg.hdrin and index == cfg.skip and rows:
                self.stream_header = [cell.text.strip() for cell in rows[0]]
                rows = rows[1:]
            if cfg.hdrin and self.stream_header is not None:
                names = self.stream_header
        else:
            rows = rows[cfg.skip :]
            if cfg.hdrin and rows:
                names = [cell.text.strip() for cell in rows[0]]
                rows = rows[1:]
        objects = [obj for obj in (self._row_object(r, names) for r in rows) if obj]
        if not names and rows:
            names = [f"col{j + 1}" for j in range(max(len(r) for r in rows))]
        columns = columns_text(names, self.quote)
        if cfg.multi == "mult":
            if streaming:
                self.store.extend(objects)
                if not last:
                    return
                objects, self.store = self.store, []
                msg.pop("parts", None)
            msg["payload"] = objects
            msg["columns"] = columns
            self.send(msg)
            return
        for i, obj in enumerate(objects):
            out = clone_msg(msg) if i < len(objects) - 1 else msg
            out["payload"] = obj
            out["columns"] = columns
            if streaming:
                shift = cfg.skip + (1 if cfg.hdrin else 0)
                new_parts = dict(out["parts"])
                new_parts["index"] = new_parts["index"] - shift
                if isinstance(new_parts.get("count"), int):
                    new_parts["count"] = new_parts["count"] - shift
                out["parts"] = new_parts
                if last:
                    out["complete"] = True
            else:
                out["parts"] = {"id": msg.get("_msgid"), "index": i, "count": len(objects)}
            self.send(out)
        if streaming and last and not objects:
            self.send({"complete": True})

    # ------------------------------------------------------------------ objects -> text
    def _render(self, msg: Msg, payload: dict[str, Any] | list[Any]) -> None:
        cfg = self.cfg
        rows: list[Any] = [payload] if isinstance(payload, dict) else list(payload)
        if rows and not any(isinstance(r, (dict, list)) for r in rows):
            rows = [rows]  # an array of plain values is one row
        names = list(self.template)
        if not names and isinstance(msg.get("columns"), str) and msg["columns"]:
            names = clean_names(msg["columns"], ",", self.quote)
        first_object = next((r for r in rows if isinstance(r, dict)), None)
        if not names and first_object is not None:
            names = [k for k, v in first_object.items() if not isinstance(v, (dict, list))]
            if not self.warned_no_template and cfg.hdrout == "none":
                self.warned_no_template = True
                self.warn("No columns template specified - using property names as columns")
        lines: list[str] = []
        if cfg.hdrout != "none" and not self.header_sent and names:
            lines.append(self.sep.join(quote_cell(n, self.sep, self.quote) for n in names))
            if cfg.hdrout == "once":
                self.header_sent = True
        for row in rows:
            if isinstance(row, dict):
                cells = [js_string(row.get(name)) if name else "" for name in names]
            elif isinstance(row, list):
                cells = [js_string(value) for value in row]
            else:
                cells = [js_string(row)]
            lines.append(self.sep.join(quote_cell(c, self.sep, self.quote) for c in cells))
        text = "".join(line + self.ret for line in lines)
        msg["payload"] = text
        msg["columns"] = columns_text(names, self.quote)
        if text:
            self.send(msg)
