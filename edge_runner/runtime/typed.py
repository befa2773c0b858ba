"""Node-RED "typed input" evaluation: a config value plus its type (``str``, ``num``, ``msg``)."""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from edge_runner.contract import Msg, NodeFailed, get_property

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi

_INT = re.compile(r"[+-]?\d+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")


def to_number(value: Any) -> float | int:
    """JavaScript ``Number(value)``: ints stay ints, unparsable text gives NaN."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if value is None:
        return 0
    text = str(value).strip()
    if text == "":
        return 0
    if text.isascii() and text.isdigit():  # the common case, without a regex
        return int(text)
    try:
        if _INT.fullmatch(text):
            return int(text)
        if _HEX.fullmatch(text):
            return int(text, 16)
        number = float(text)
        if number.is_integer() and "e" not in text.lower() and "." not in text:
            return int(number)
        return number
    except ValueError:
        lowered = text.lower()
        if lowered in {"infinity", "+infinity"}:
            return math.inf
        if lowered == "-infinity":
            return -math.inf
        return math.nan


@lru_cache(maxsize=512)
def compile_jsonata(expression: str) -> Any:
    import jsonata  # imported lazily: it costs startup time and most flows never use it

    try:
        return jsonata.Jsonata(expression)
    except Exception as exc:  # the library raises its own JException and plain errors
        raise NodeFailed(f"invalid JSONata expression {expression!r}: {exc}") from exc


def evaluate_jsonata(
    rt: NodeApi | None, expression: str, msg: Msg | None, bindings: dict[str, Any] | None = None
) -> Any:
    expr = compile_jsonata(expression)
    frame = expr.create_frame()
    if rt is not None:
        frame.bind("flowContext", _jsonata_context_fn(rt.flow.get))
        frame.bind("globalContext", _jsonata_context_fn(rt.global_.get))
        frame.bind("env", _jsonata_fn(lambda key: rt.env(str(key))))
    for key, value in (bindings or {}).items():
        frame.bind(key, value)
    try:
        return expr.evaluate(jsonata_view(msg), frame)
    except Exception as exc:
        raise NodeFailed(f"JSONata error in {expression!r}: {exc}") from exc


_JSON_SCALARS = (str, int, float, bool, type(None))


def jsonata_view(value: Any) -> Any:
    """What JSONata sees of a message: JSON types only.

    jsonata-python refuses anything else, so bytes become a list of byte values (what a Node-RED
    Buffer shows as in JSON) and objects with no JSON form (``msg.res``, sockets) are left out.
    """
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, _JSON_SCALARS):
                out[key] = item
            else:
                view = jsonata_view(item)
                if view is not _OPAQUE:
                    out[key] = view
        return out
    if isinstance(value, (list, tuple)):
        return [None if (v := jsonata_view(item)) is _OPAQUE else v for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return list(bytes(value))
    return _OPAQUE


_OPAQUE: Any = object()


def jsonata_function(fn: Callable[[Any], Any]) -> Any:
    """A one-argument Python function callable from JSONata (``$env("X")``)."""
    return _jsonata_fn(fn)


def _jsonata_fn(fn: Callable[[Any], Any]) -> Any:
    return _jsonata_native(lambda args: fn(args[0] if args else None), "<s:x>")


def _jsonata_context_fn(get: Callable[[str, Any, str | None], Any]) -> Any:
    """``$flowContext(key[, store])`` / ``$globalContext(key[, store])`` as in Node-RED."""

    def call(args: list[Any]) -> Any:
        store = args[1] if len(args) > 1 and args[1] is not None else None
        return get(str(args[0]) if args else "", None, None if store is None else str(store))

    return _jsonata_native(call, "<ss?:x>")


def _jsonata_native(call: Callable[[list[Any]], Any], signature: str) -> Any:
    import jsonata

    class _Native(jsonata.Jsonata.JFunctionCallable):  # type: ignore[misc]  # library class
        def call(self, _input: Any, args: list[Any]) -> Any:
            return call(args)

    return jsonata.Jsonata.JFunction(_Native(), signature)


def evaluate_env_reference(value: str, lookup: Callable[[str], Any]) -> Any:
    """An ``env`` typed value: ``NAME`` or ``${NAME}`` gives the variable's value (``""`` when
    undefined); ``${A}/${B}`` gives the text with each reference replaced."""
    match = _WHOLE_BRACED.match(value)
    if match is not None:
        found = lookup(match.group(1))
    elif _ANY_BRACED.search(value) is None:
        found = lookup(value)
    else:
        return _ANY_BRACED.sub(lambda m: _as_text(lookup(m.group(1))), value)
    return "" if found is None else found


_WHOLE_BRACED = re.compile(r"^\$\{([^}]+)\}$")
_ANY_BRACED = re.compile(r"\$\{([^}]+)\}")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def evaluate(rt: NodeApi | None, value: Any, vtype: str | None, msg: Msg | None = None) -> Any:
    """Evaluate a typed input the way RED.util.evaluateNodeProperty does."""
    vtype = vtype or "str"
    if vtype == "str":
        return "" if value is None else str(value)
    if vtype == "num":
        return to_number(value)
    if vtype == "bool":
        return value is True or str(value).strip().lower() == "true"
    if vtype == "json":
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError as exc:
            raise NodeFailed(f"invalid JSON value: {exc}") from exc
    if vtype == "bin":
        data = json.loads(value) if isinstance(value, str) else value
        if isinstance(data, str):
            return data.encode()
        return bytes(int(b) & 0xFF for b in (data or []))
    if vtype == "date":
        if value in (None, "", "timestamp"):
            return int(time.time() * 1000)
        if value == "iso":
            now = time.time()
            return (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
                + f".{int(now * 1000) % 1000:03d}Z"
            )
        return int(time.time() * 1000)
    if vtype == "env":
        return evaluate_env_reference(
            "" if value is None else str(value), rt.env if rt is not None else os.environ.get
        )
    if vtype == "msg":
        return get_property(msg or {}, str(value)) if value not in (None, "") else msg
    if vtype in {"flow", "global"}:
        if rt is None:
            return None
        store = rt.flow if vtype == "flow" else rt.global_
        return store.get(str(value))
    if vtype == "jsonata":
        return evaluate_jsonata(rt, str(value), msg)
    if vtype == "re":
        return re.compile(str(value))
    if vtype in {"node", "cred"}:
        return value
    raise NodeFailed(f"unknown value type {vtype!r}")
