"""An embedded JavaScript engine for Node-RED's ``function`` node: QuickJS (``quickjs-ng``).

Why QuickJS and not V8 (``mini-racer`` 0.14.1), measured on the 2-core dev VM (a JSON message in,
``msg.payload.v *= 2``, JSON out; docs/function-js.md has the figures):

* per call 9-12 us (QuickJS, called in the event-loop thread) against ~250 us (mini-racer: every
  call is a round trip to V8's own thread);
* memory per context ~170 KB against ~0.7 MB and more (a V8 isolate per node);
* host functions: QuickJS calls Python synchronously, so ``flow.get()`` returns its value as in
  Node-RED; mini-racer's Python callbacks are asynchronous (JS receives a promise);
* isolation: one QuickJS runtime (heap, GC, memory limit) per function node;
* wheels: both have manylinux wheels for CPython 3.11 on x86_64 and aarch64 (quickjs-ng is
  abi3, 2.5 MB; mini-racer 22 MB).

The binding's own time limit forbids calls into Python while it is set, so the runaway guard is
QuickJS's interrupt handler installed through ``ctypes`` (the symbol is exported by the binding's
extension; the runtime pointer is read from the Context object and checked against
``JS_GetRuntime`` of its context pointer before use, so a layout change fails loudly at start).
The handler runs every few thousand JS operations and stops the script once ``deadline`` passed.

Values cross as JSON text. Markers carry what JSON cannot: ``{"\\u0001B": base64}`` (Buffer <->
bytes), ``{"\\u0001D": ms}`` (a Date; it reaches Python as its ISO text, as JSON.stringify
writes it), ``{"\\u0001H": n}`` (a host object such as an ``http in`` response handle, kept
here and given back when the message returns), ``{"\\u0001E": {name, message, stack, text}}`` (an
Error; a ``JsError`` in Python, ``{}`` in JSON as JSON.stringify gives for it, and a plain
Error again when it returns). ``undefined`` properties are dropped and
``undefined`` in arrays becomes ``null``, as when Node-RED serialises a message.
"""

from __future__ import annotations

import base64
import ctypes
import datetime
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from importlib import resources
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]  # C accelerators, not in typeshed
from typing import Any

import _quickjs
import quickjs

JSException = quickjs.JSException
_BUFFER, _DATE, _HANDLE, _ERROR = "\x01B", "\x01D", "\x01H", "\x01E"
_HANDLES_KEPT = 10_000

_lib = ctypes.CDLL(_quickjs.__file__)
_lib.JS_SetInterruptHandler.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
_lib.JS_SetInterruptHandler.restype = None
_lib.JS_GetRuntime.argtypes = [ctypes.c_void_p]
_lib.JS_GetRuntime.restype = ctypes.c_void_p
_INTERRUPT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
# RuntimeData in the binding's module.c: PyObject_HEAD, then JSRuntime *, then JSContext *
_RUNTIME_OFFSET = 2 * ctypes.sizeof(ctypes.c_void_p)
_CONTEXT_OFFSET = _RUNTIME_OFFSET + ctypes.sizeof(ctypes.c_void_p)


def prelude() -> str:
    return resources.files(__package__).joinpath("prelude.js").read_text(encoding="utf-8")


class JsError(dict[str, Any]):
    """A JavaScript Error object inside a message (a thrown one is kept as ``msg.error``).

    It is an empty dict, as its JSON is ``{}`` in Node-RED (an Error's properties are not
    enumerable); the debug sidebar shows it as an error. ``str()`` is the error's
    ``toString()`` unless ``text`` says otherwise; ``stack`` is QuickJS's."""

    def __init__(self, name: str, message: str, stack: str = "", text: str = "") -> None:
        super().__init__()
        self.name, self.message, self.stack = name, message, stack
        self.text = text or (f"{name}: {message}" if message else name)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"JsError({self.text!r})"


class Handles:
    """Host objects lent to JavaScript by number, the most recent ``_HANDLES_KEPT`` kept."""

    def __init__(self) -> None:
        self._objects: OrderedDict[int, Any] = OrderedDict()
        self._ids: dict[int, int] = {}
        self._next = 0
        self.encoder = _Encoder(self)
        self.decoder = json.JSONDecoder(object_hook=self._revive)

    def _revive(self, obj: dict[str, Any]) -> Any:
        if len(obj) == 1:
            if _BUFFER in obj:
                return base64.b64decode(obj[_BUFFER])
            if _DATE in obj:
                return iso_from_ms(obj[_DATE])
            if _HANDLE in obj:
                return self.get(obj[_HANDLE])
            if _ERROR in obj and isinstance(obj[_ERROR], dict):
                data = obj[_ERROR]
                return JsError(
                    str(data.get("name", "Error")),
                    str(data.get("message", "")),
                    str(data.get("stack", "")),
                    str(data.get("text", "")),
                )
        return obj

    def put(self, obj: Any) -> int:
        found = self._ids.get(id(obj))
        if found is not None and self._objects.get(found) is obj:
            self._objects.move_to_end(found)
            return found
        self._next += 1
        self._objects[self._next] = obj
        self._ids[id(obj)] = self._next
        while len(self._objects) > _HANDLES_KEPT:
            _, old = self._objects.popitem(last=False)
            self._ids.pop(id(old), None)
        return self._next

    def get(self, number: Any) -> Any:
        return self._objects.get(number) if isinstance(number, int) else None


def iso_from_ms(ms: float) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Encoder(json.JSONEncoder):
    """JSON for the JS side; one per ``Handles`` (building an encoder per call costs more than
    encoding a small message)."""

    def __init__(self, handles: Handles) -> None:
        super().__init__(ensure_ascii=False, separators=(",", ":"))
        self.handles = handles
        self.marked = False
        # JSONEncoder.encode builds the C encoder again on every call; build it once. No
        # circular-reference markers: messages are trees (a cycle ends in RecursionError).
        self.chunks = c_make_encoder(
            None, self.default, encode_basestring, None, ":", ",", False, False, True
        )

    def encode(self, o: Any) -> str:
        if type(o) is str:
            return encode_basestring(o)
        return "".join(self.chunks(o, 0))

    def default(self, o: Any) -> Any:
        self.marked = True
        if isinstance(o, (bytes, bytearray, memoryview)):
            return {_BUFFER: base64.b64encode(o).decode("ascii")}
        if isinstance(o, datetime.datetime):
            return {_DATE: o.timestamp() * 1000}
        if isinstance(o, (set, frozenset, tuple)):
            return list(o)
        return {_HANDLE: self.handles.put(o)}


def encode(value: Any, handles: Handles) -> tuple[str, bool]:
    """``value`` as JSON text for the JS side, and whether it holds markers."""
    encoder = handles.encoder
    encoder.marked = False
    text = encoder.encode(value)
    if "NaN" in text or "Infinity" in text:
        text = encoder.encode(_finite(value))
    return text, encoder.marked


def _finite(value: Any) -> Any:
    # JSON.stringify writes null for NaN and the infinities; JSON.parse refuses Python's tokens
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# The C scanner directly: JSON.stringify output has no surrounding whitespace to skip, and
# json.loads' checks cost as much as scanning a small message.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set by JSONDecoder.__init__, missing from typeshed


def decode(text: str | None, marked: bool, handles: Handles) -> Any:
    """JSON text from the JS side back to Python (``None`` text means ``undefined``)."""
    if text is None:
        return None
    if not marked:
        return _scan(text, 0)[0]
    return handles.decoder.decode(text)


class ScriptTimeout(Exception):  # noqa: N818  # named like the JS error it reports
    """The script ran past its deadline and was stopped."""


class JsContext:
    """One QuickJS runtime and context with the prelude loaded and a runaway guard."""

    def __init__(self, host: dict[str, Callable[..., Any]], memory_limit: int) -> None:
        self.context = quickjs.Context()
        self.deadline = math.inf
        self.interrupted = False
        self._handler = _INTERRUPT(self._check)
        base = id(self.context)
        runtime = ctypes.c_void_p.from_address(base + _RUNTIME_OFFSET).value
        context = ctypes.c_void_p.from_address(base + _CONTEXT_OFFSET).value
        if not runtime or not context or _lib.JS_GetRuntime(context) != runtime:
            raise RuntimeError("unsupported quickjs build: cannot install the interrupt handler")
        _lib.JS_SetInterruptHandler(runtime, self._handler, None)
        self.context.set_memory_limit(memory_limit)
        for name, function in host.items():
            self.context.add_callable(name, function)
        self.context.eval(prelude())

    def _check(self, _runtime: Any, _opaque: Any) -> int:
        if time.monotonic() > self.deadline:
            self.interrupted = True
            return 1
        return 0

    def function(self, name: str) -> Any:
        return self.context.get(name)

    def run(self, function: Any, limit: float, *args: Any, drain: bool = True) -> Any:
        """Call ``function`` within ``limit`` seconds and, when ``drain`` or when it returned
        ``None`` (a promise is pending), run the promise jobs queued; returns its result."""
        self.interrupted = False
        self.deadline = time.monotonic() + limit
        try:
            result = function(*args)
            if drain or result is None:
                while self.context.execute_pending_job():
                    pass
            return result
        except JSException:
            if self.interrupted:
                text = f"Script execution timed out after {round(limit * 1000)}ms"
                raise ScriptTimeout(text) from None
            raise
        finally:
            self.deadline = math.inf
