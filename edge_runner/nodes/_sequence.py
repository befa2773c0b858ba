"""Shared helpers of the function/sequence core nodes: JavaScript value semantics, fast
property access, context keys, durations and ``msg.parts`` bookkeeping.

Node-RED's nodes are JavaScript; where their behaviour depends on JS semantics (``==``, ``<``,
``String(x)``, ``String.prototype.replace`` with ``$1``) it is restated here once.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from edge_runner.contract import Msg, NodeFailed, parse_path, resolve_path
from edge_runner.runtime.typed import to_number

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi


class _Undefined:
    """JavaScript ``undefined``: a missing property (distinct from ``None`` = JSON null)."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Final = _Undefined()

Path = list[str | int]


# ------------------------------------------------------------------------ property access


def compile_path(path: str) -> Path:
    """Parse a property expression once (at construction) so messages pay no parsing."""
    return parse_path(path)


def get_path(obj: Any, parts: Path) -> Any:
    """Value at ``parts`` or ``UNDEFINED`` (fast path for a single top-level key)."""
    if len(parts) == 1 and isinstance(obj, dict):
        return obj.get(parts[0], UNDEFINED)
    parts = resolve_path(parts, obj)
    cur = obj
    for part in parts:
        if isinstance(cur, dict):
            cur = cur.get(part if isinstance(part, str) else str(part), UNDEFINED)
            if cur is UNDEFINED:
                return UNDEFINED
        elif isinstance(cur, list) and isinstance(part, int):
            if not -len(cur) <= part < len(cur):
                return UNDEFINED
            cur = cur[part]
        elif isinstance(cur, (str, bytes)) and part == "length":
            return len(cur)
        else:
            return UNDEFINED
    return cur


def set_path(obj: Any, parts: Path, value: Any) -> bool:
    """Like RED.util.setMessageProperty: create missing parents; ``UNDEFINED`` deletes the
    property (and creates nothing). Returns False when a parent is not an object."""
    if value is UNDEFINED:
        delete_path(obj, parts)
        return True
    parts = resolve_path(parts, obj)
    if len(parts) == 1 and isinstance(obj, dict):
        key = parts[0]
        obj[key if isinstance(key, str) else str(key)] = value
        return True
    cur = obj
    for i, part in enumerate(parts[:-1]):
        nxt: Any = [] if isinstance(parts[i + 1], int) else {}
        # An existing non-object parent (string, number, null) cannot hold a child: Node-RED
        # refuses rather than overwriting it.
        if isinstance(cur, dict):
            key = part if isinstance(part, str) else str(part)
            if key not in cur:
                cur[key] = nxt
            cur = cur[key]
        elif isinstance(cur, list) and isinstance(part, int) and part >= 0:
            if part >= len(cur):
                cur.extend([None] * (part + 1 - len(cur)))
                cur[part] = nxt
            cur = cur[part]
        else:
            return False
        if not isinstance(cur, (dict, list)):
            return False
    last = parts[-1]
    if isinstance(cur, dict):
        cur[last if isinstance(last, str) else str(last)] = value
        return True
    if isinstance(cur, list) and isinstance(last, int) and last >= 0:
        if last >= len(cur):
            cur.extend([None] * (last + 1 - len(cur)))
        cur[last] = value
        return True
    return False


def delete_path(obj: Any, parts: Path) -> None:
    parts = resolve_path(parts, obj)
    parent = get_path(obj, parts[:-1]) if len(parts) > 1 else obj
    last = parts[-1]
    if isinstance(parent, dict):
        parent.pop(last if isinstance(last, str) else str(last), None)
    elif isinstance(parent, list) and isinstance(last, int) and -len(parent) <= last < len(parent):
        del parent[last]


def context_get(rt: NodeApi, scope: str, key: str) -> Any:
    """A flow or global context value (``#:(store)::`` honoured), JS ``undefined`` if unset."""
    return (rt.flow if scope == "flow" else rt.global_).get(key, UNDEFINED)


def evaluate_typed(rt: NodeApi, value: Any, vtype: str, msg: Msg) -> Any:
    """``RED.util.evaluateNodeProperty`` with JS ``undefined`` for missing msg/context values."""
    if vtype == "msg":
        return get_path(msg, compile_path(str(value)))
    if vtype in ("flow", "global"):
        return context_get(rt, vtype, str(value))
    return rt.evaluate(value, vtype, msg)


# ------------------------------------------------------------------------ JS semantics


def js_number(value: Any) -> float | int:
    """JavaScript ``Number(value)``."""
    if value is UNDEFINED:
        return math.nan
    if isinstance(value, (dict, bytes, bytearray)):
        return math.nan
    if isinstance(value, list):
        if not value:
            return 0
        if len(value) == 1:
            return js_number(js_string(value[0]))
        return math.nan
    return to_number(value)


def js_string(value: Any) -> str:
    """JavaScript ``String(value)``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _js_float(value)
    if value is None:
        return "null"
    if value is UNDEFINED:
        return "undefined"
    if isinstance(value, list):
        return ",".join("" if v is None or v is UNDEFINED else js_string(v) for v in value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def _js_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if value.is_integer() and magnitude < 1e21:
        return str(int(value))
    if 1e-6 <= magnitude < 1e21:
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text else text
    mantissa, _, exponent = repr(value).partition("e")
    exp = int(exponent)
    return f"{mantissa}e{'+' if exp > 0 else '-'}{abs(exp)}"


def _primitive(value: Any) -> Any:
    if isinstance(value, (dict, list, bytes, bytearray)):
        return js_string(value)
    return value


def js_loose_eq(a: Any, b: Any) -> bool:
    """JavaScript ``a == b``."""
    a_nullish = a is None or a is UNDEFINED
    b_nullish = b is None or b is UNDEFINED
    if a_nullish or b_nullish:
        return a_nullish and b_nullish
    a_obj = isinstance(a, (dict, list, bytes, bytearray))
    b_obj = isinstance(b, (dict, list, bytes, bytearray))
    if a_obj and b_obj:
        return a is b
    a, b = _primitive(a), _primitive(b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    x, y = js_number(a), js_number(b)
    return x == y  # NaN compares unequal in Python too


def js_compare(a: Any, b: Any) -> int | None:
    """Sign of ``a - b`` under JS relational comparison; None when NaN is involved."""
    a, b = _primitive(a), _primitive(b)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    x, y = js_number(a), js_number(b)
    if x != x or y != y:  # NaN
        return None
    return (x > y) - (x < y)


def js_lt(a: Any, b: Any) -> bool:
    c = js_compare(a, b)
    return c is not None and c < 0


def js_lte(a: Any, b: Any) -> bool:
    c = js_compare(a, b)
    return c is not None and c <= 0


def js_gt(a: Any, b: Any) -> bool:
    c = js_compare(a, b)
    return c is not None and c > 0


def js_gte(a: Any, b: Any) -> bool:
    c = js_compare(a, b)
    return c is not None and c >= 0


def js_typeof(value: Any) -> str:
    if value is UNDEFINED:
        return "undefined"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"  # dict, list, bytes and null


# ------------------------------------------------------------------------ JS regular expressions

_NAMED_GROUP = re.compile(r"\(\?<(?![=!])")


def js_regex(pattern: str, flags: str = "") -> re.Pattern[str]:
    """Compile a JavaScript regular expression; raise ValueError with a clear message."""
    py_flags = 0
    if "i" in flags:
        py_flags |= re.IGNORECASE
    if "m" in flags:
        py_flags |= re.MULTILINE
    if "s" in flags:
        py_flags |= re.DOTALL
    try:
        return re.compile(_NAMED_GROUP.sub("(?P<", pattern), py_flags)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc


_REPLACEMENT = re.compile(r"\$(\$|&|`|'|\d{1,2}|<[^>]*>)")


def js_replacement(template: str) -> Callable[[re.Match[str]], str]:
    """A ``re.sub`` callback with JS ``String.replace`` replacement patterns ($1, $&, $$ ...)."""
    if "$" not in template:
        return lambda _match: template

    def expand(match: re.Match[str]) -> str:
        def one(token: re.Match[str]) -> str:
            code = token.group(1)
            if code == "$":
                return "$"
            if code == "&":
                return match.group(0)
            if code == "`":
                return match.string[: match.start()]
            if code == "'":
                return match.string[match.end() :]
            if code.startswith("<"):
                try:
                    return match.group(code[1:-1]) or ""
                except IndexError:
                    return token.group(0)
            groups = match.re.groups
            number = int(code)
            if 1 <= number <= groups:
                return match.group(number) or ""
            if len(code) == 2 and 1 <= int(code[0]) <= groups:
                return (match.group(int(code[0])) or "") + code[1]
            return token.group(0)

        return _REPLACEMENT.sub(one, template)

    return expand


# ------------------------------------------------------------------------ durations, ids

_UNIT_MS = {
    "milliseconds": 1.0,
    "millisecond": 1.0,
    "ms": 1.0,
    "seconds": 1000.0,
    "second": 1000.0,
    "s": 1000.0,
    "secs": 1000.0,
    "minutes": 60_000.0,
    "minute": 60_000.0,
    "min": 60_000.0,
    "mins": 60_000.0,
    "hours": 3_600_000.0,
    "hour": 3_600_000.0,
    "hr": 3_600_000.0,
    "hrs": 3_600_000.0,
    "days": 86_400_000.0,
    "day": 86_400_000.0,
}


def duration_ms(amount: Any, unit: str) -> float:
    """A configured amount in ``unit`` as milliseconds; ValueError for nonsense."""
    factor = _UNIT_MS.get(str(unit or "ms").lower())
    if factor is None:
        raise ValueError(f"unknown time unit {unit!r}")
    number = js_number(amount if amount not in (None, "") else 0)
    if number != number or math.isinf(number):
        raise ValueError(f"{amount!r} is not a number")
    return float(number) * factor


def new_id() -> str:
    """A Node-RED style id (16 hex digits) for ``msg.parts.id``."""
    return uuid.uuid4().hex[:16]


def unescape(text: str) -> str:
    """Turn the escaped separators the editor stores (``\\n``, ``\\t``, ``\\u0041``) into text."""
    if "\\" not in text:
        return text
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return text


def require_parts(msg: Msg) -> dict[str, Any] | None:
    """``msg.parts`` when it is a usable sequence descriptor (has ``id`` and ``index``)."""
    parts = msg.get("parts")
    if isinstance(parts, dict) and "id" in parts and "index" in parts:
        return parts
    return None


def fail(text: str) -> NodeFailed:
    return NodeFailed(text)
