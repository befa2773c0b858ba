"""Node-RED's ``function`` node: JavaScript run per message in an embedded QuickJS engine.

Every node has its own QuickJS runtime (heap, globals, memory limit) with Node-RED's sandbox
(``edge_runner/lib/js/prelude.js``); the engine choice and the boundary rules are in
``edge_runner.lib.js``. The body is compiled once, at start, as Node-RED compiles it: the body
of ``async function(msg, node)``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, cast

from pydantic import field_validator

from edge_runner.contract import (
    CLEAR_STATUS,
    Category,
    Msg,
    NeedsUserFix,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    NodeStatus,
    register,
)
from edge_runner.lib.js import (
    Handles,
    JsContext,
    JSException,
    ScriptTimeout,
    decode,
    encode,
)
from edge_runner.nodes.link import find_link_in
from edge_runner.nodes.python_function import Config as PythonFunctionConfig
from edge_runner.runtime.watchdog import DEFAULT_LIMIT_S

MEMORY_LIMIT = 256 * 1024 * 1024
BUILT_IN_MODULES = frozenset({"crypto"})
_COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_CALLS_DONE = re.compile(r"node\.done\s*\(\s*\)")
_FILLS = frozenset({"red", "green", "yellow", "blue", "grey"})
_SHAPES = frozenset({"ring", "dot"})


# Node-RED's function-node fields: python-function mirrors them, so its schema is the base.
class Config(PythonFunctionConfig):
    func: str = "\nreturn msg;"
    libs: list[dict[str, Any]] = []

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs_as_text(cls, value: Any) -> Any:
        # older editors wrote the port count as text
        return 1 if value in (None, "") else int(value)


_Config = Config  # the class attribute below shadows the name inside the node class

SPEC = NodeSpec(
    type="function",
    version=1,
    category=Category.FUNCTION,
    inputs=1,
    outputs=1,
    dynamic_outputs="outputs",
    label="function",
    color="#fdd0a2",
    icon="function.svg",
    help="""A JavaScript function to run against the messages the node receives, as in Node-RED.

### Inputs
Any message, available to the code as `msg`.

### Outputs
What the code returns: a message goes to the first output; an array has one entry per output
(a message, an array of messages to send several in order, or `null`); `null`/`undefined`
sends nothing. `node.send(msg)` sends at any time (also from timers and after `await`).

### Details
The code is the body of an `async function(msg)`, so `await` works. Available names:

- `node`: `send(msg, clone)`, `done(err)`, `warn(x)`, `error(x, msg)` (with `msg` catch nodes
  receive it), `log(x)`, `status({fill, shape, text})`, `id`, `name`, `path`, `outputCount`,
  `linkcall(target, msg, {timeout})` (a promise of what the `link in` node named or with the
  id `target` returns through a `link out` node in return mode; it rejects with `timeout`
  after `timeout` ms, 5000 by default). Code that calls `node.done()` completes its messages
  itself; otherwise a message is complete when the function has returned (or its promise
  resolved). A thrown `Error` stays on the message as `msg.error`.
- `context`, `flow`, `global`: `get(key[, store][, callback])`, `set(key, value[, store]
  [, callback])`, `keys([store][, callback])`. An object read with `get` and changed in place
  is stored back when the call ends, as if it were Node-RED's live object.
- `env.get(name)`, `RED.util` (`cloneMessage`, `getMessageProperty`, `setMessageProperty`,
  `evaluateNodeProperty`, `generateId`, ...), `Buffer`, `console`, `setTimeout`,
  `setInterval`, `clearTimeout`, `clearInterval` (all cleared when the node stops).
- `crypto` / `require("crypto")`: `randomUUID()`, `createHash(alg)`, `createHmac(alg, key)`
  (`update(...)`, `digest(encoding)`), `randomBytes(n)`. Other modules (**libs**) are refused
  with a node error: the node does not start.

**On Start** (`initialize`) runs once when the node starts, **On Stop** (`finalize`) when it
stops. **timeout** (seconds): the longest the code may run at once; 0 means 4 s. A script past
it is stopped (`Script execution timed out after ...ms`), the message is reported as an error
(catchable) and the status turns red; the rest of the runner goes on.

Messages cross into JavaScript as JSON plus Buffers: `bytes` become `Buffer`s and back; a
`Date` leaves the function as its ISO text (what `JSON.stringify` writes); `undefined`
properties are dropped.
""",
)


_ASYNC_WORDS = re.compile(r"\b(?:await|async|Promise|then)\b")


def _body_source(code: str) -> str:
    # Node-RED always compiles an async function; a body without ``await`` behaves the same as
    # a plain function whose result is handled at once, which saves a promise turn per message.
    prefix = "async function" if re.search(r"\bawait\b", code) else "function"
    return f"({prefix}(msg, node) {{\n" + code + "\n})"


def _hook_source(code: str) -> str:
    return "(async function(node) {\n" + code + "\n})" if code.strip() else ""


def _syntax_error(exc: JSException, where: str) -> str:
    text = str(exc)
    first = text.splitlines()[0] if text else "SyntaxError"
    found = re.search(r":(\d+):(\d+)", text)
    if found:
        return f"{first} ({where}line {int(found.group(1)) - 1})"
    return first


def _js_error_text(exc: JSException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else "Error"


def _digest(algorithm: str, key: str | None, data: str) -> str:
    name = algorithm.replace("-", "").lower()
    payload = _b64(data)
    try:
        if key is None:
            return hashlib.new(name, payload).hexdigest()
        return hmac.new(_b64(key), payload, name).hexdigest()
    except ValueError:
        raise ValueError("Digest method not supported") from None


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


@register
class FunctionNode(Node):
    """Runs the configured JavaScript for every message, with Node-RED's function sandbox."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = _Config
    config: _Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        cfg = self.config
        self.limit = float(cfg.timeout) if cfg.timeout and cfg.timeout > 0 else DEFAULT_LIMIT_S
        code = _COMMENTS.sub("", cfg.func)
        self.auto_done = not _CALLS_DONE.search(code)
        self.drain = bool(_ASYNC_WORDS.search(code))
        runtime.manual_done = True  # completion is reported when the promise settles
        self.handles = Handles()
        self.js: JsContext | None = None
        self.on_js: Any = None
        self.fire_js: Any = None
        self.settle_js: Any = None
        self.link_return_js: Any = None
        self.borrowed = False  # an object was read from context during this call
        self.timers: dict[int, asyncio.TimerHandle] = {}
        self.link_calls: dict[int, asyncio.TimerHandle] = {}  # node.linkcall() awaiting
        self.link_ids = itertools.count(1)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pending: list[Callable[[], None]] = []
        self.status_set = False
        self.timed_out = False
        self.flushing = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        cfg = self.config
        for lib in cfg.libs:
            module = str(lib.get("module") or "")
            var = str(lib.get("var") or "")
            if module and module not in BUILT_IN_MODULES:
                raise NeedsUserFix(f"Module {module} not allowed")
            if module and not re.fullmatch(r"[A-Za-z_$][\w$]*", var):
                raise NeedsUserFix(f"Invalid module variable name: {var}")
        host: dict[str, Callable[..., Any]] = {
            "__py_send": self._host_send,
            "__py_report": self._host_report,
            "__py_ctx": self._host_context,
            "__py_env": self._host_env,
            "__py_timer": self._host_timer,
            "__py_clear": self._host_clear,
            "__py_crypto": self._host_crypto,
            "__py_link": self._host_link,
        }
        js = JsContext(host, MEMORY_LIMIT)
        info = {
            "id": self.rt.id,
            "name": self.rt.name,
            "path": self.rt.path,
            "outputCount": cfg.outputs,
            "watched": self.rt.watched,
        }
        install = js.function("__install")
        for source, where in (
            (_body_source(cfg.func), "body:"),
            (_hook_source(cfg.initialize), "setup:"),
            (_hook_source(cfg.finalize), "cleanup:"),
        ):
            if not source:
                continue
            try:
                js.context.eval(source)
            except JSException as exc:
                raise NeedsUserFix(_syntax_error(exc, where)) from None
        install(
            json.dumps(info),
            _body_source(cfg.func),
            _hook_source(cfg.initialize),
            _hook_source(cfg.finalize),
        )
        for lib in cfg.libs:
            if lib.get("module"):
                js.function("__lib")(str(lib["var"]), str(lib["module"]))
        self.js = js
        self.on_js = js.function("__onMessage")
        self.fire_js = js.function("__fire")
        self.settle_js = js.function("__settle")
        self.link_return_js = js.function("__linkReturn")
        if cfg.initialize.strip():
            self._call(js.function("__start"), None)

    async def stop(self) -> None:
        js, self.js = self.js, None
        for handle in (*self.timers.values(), *self.link_calls.values()):
            handle.cancel()
        self.timers.clear()
        self.link_calls.clear()
        if js is None:
            return
        if self.config.finalize.strip():
            self.js = js
            try:
                self._call(js.function("__stop"), None)
            finally:
                self.js = None
        self.pending.clear()
        if self.status_set:
            self.rt.status(CLEAR_STATUS)
        self.on_js = None

    # ------------------------------------------------------------------ messages
    def on_message(self, msg: Msg) -> None:
        if self.js is None:
            return
        text, marked = encode(msg, self.handles)
        result = self._call(self.on_js, msg, text, marked, self.auto_done, drain=self.drain)
        if not result or result == "E":
            if result == "" and self.auto_done and self.rt.watched:
                self.rt.done(msg)
            return
        msgs = decode(result, "\\u0001" in result, self.handles)
        self.rt.send(msgs)
        if self.auto_done and self.rt.watched:
            self.rt.done(msg)

    def _call(self, function: Any, msg: Msg | None, *args: Any, drain: bool = True) -> Any:
        """Run JavaScript, then deliver what it queued (sends, errors, completions) in order."""
        js = self.js
        if js is None:
            return None
        result = None
        try:
            result = js.run(function, self.limit, *args, drain=drain)
            if self.borrowed:
                self.borrowed = False
                js.run(self.settle_js, self.limit, drain=False)
        except ScriptTimeout as exc:
            self.timed_out = True
            reason = str(exc)
            self.rt.status(NodeStatus("red", "dot", reason))
            self.pending.append(lambda: self.rt.error(reason, msg))
        except JSException as exc:
            text = _js_error_text(exc)
            self.pending.append(lambda: self.rt.error(text, msg))
        else:
            if self.timed_out:
                self.timed_out = False
                self.rt.status(CLEAR_STATUS)
        if self.pending:
            self._flush()
        return result

    def _flush(self) -> None:
        # Sends queued while JavaScript ran are delivered after it returned, in order, as
        # Node-RED delivers them asynchronously: a wire back into this node never re-enters it.
        if self.flushing:
            return
        self.flushing = True
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                for action in batch:
                    action()
        finally:
            self.flushing = False

    # ------------------------------------------------------------------ host functions
    def _host_send(self, text: str, marked: bool) -> None:
        msgs = decode(text, marked, self.handles)
        self.pending.append(lambda: self.rt.send(msgs))

    def _host_report(
        self, kind: str, text: str, marked: bool, plain: bool, msg_text: str | None
    ) -> None:
        rt = self.rt
        value = text if plain else decode(text, marked, self.handles)
        if kind == "log":
            rt.log(value)
        elif kind == "warn":
            rt.warn(value)
        elif kind == "status":
            self._status(value)
        else:
            msg = decode(msg_text, marked, self.handles) if msg_text is not None else None
            if kind == "done":
                self.pending.append(lambda: rt.done(msg if msg is not None else {}))
                return
            self.pending.append(lambda: rt.error(value, msg))

    def _status(self, value: Any) -> None:
        data = value if isinstance(value, dict) else {}
        fill = data.get("fill") if data.get("fill") in _FILLS else None
        shape = data.get("shape") if data.get("shape") in _SHAPES else None
        text = data.get("text", "")
        text = "" if text is None else text if isinstance(text, str) else json.dumps(text)
        self.status_set = True
        self.rt.status(NodeStatus(cast(Any, fill), cast(Any, shape), text))

    def _host_context(
        self, scope: str, op: str, key_text: str, store: str | None, value: str | None, marked: bool
    ) -> str | None:
        rt = self.rt
        target = rt.context if scope == "context" else rt.flow if scope == "flow" else rt.global_
        if op == "keys":
            return "0" + json.dumps(target.keys(store))
        key = decode(key_text, False, self.handles)
        if op == "get":
            if isinstance(key, list):
                found: Any = [target.get(str(k), None, store) for k in key]
            else:
                found = target.get(str(key), None, store)
            if found is None:
                return None
            self.borrowed = self.borrowed or isinstance(found, (dict, list))
            out, out_marked = encode(found, self.handles)
            return ("1" if out_marked else "0") + out
        if isinstance(key, list):
            values = decode(value, marked, self.handles) if value is not None else []
            for index, one in enumerate(key):
                item = values[index] if isinstance(values, list) and index < len(values) else None
                target.set(str(one), item, store)
        else:
            target.set(str(key), decode(value, marked, self.handles), store)
        return None

    def _host_env(self, name: str) -> str | None:
        value = self.rt.env(name)
        return None if value is None else encode(value, self.handles)[0]

    def _host_timer(self, timer_id: int, ms: float, repeat: bool) -> None:
        loop = self.loop
        if loop is None:
            return
        delay = max(float(ms), 1.0 if repeat else 0.0) / 1000
        self.timers[timer_id] = loop.call_later(delay, self._fire, timer_id, delay, repeat)

    def _host_clear(self, timer_id: int) -> None:
        handle = self.timers.pop(timer_id, None)
        if handle is not None:
            handle.cancel()

    def _fire(self, timer_id: int, delay: float, repeat: bool) -> None:
        if self.js is None:
            return
        if repeat and self.loop is not None:
            self.timers[timer_id] = self.loop.call_later(delay, self._fire, timer_id, delay, repeat)
        else:
            self.timers.pop(timer_id, None)
        self._call(self.fire_js, {}, timer_id)

    def _host_link(self, target: str, text: str, marked: bool, timeout_ms: float) -> int | str:
        """``node.linkcall``: send the message to the ``link in`` node; a call id, or why not."""
        try:
            link_in = find_link_in(self.rt, target)
        except NodeFailed as exc:
            return str(exc)
        if self.loop is None:
            return "the function node is not running"
        msg = decode(text, marked, self.handles)
        call_id = next(self.link_ids)
        stack = msg.get("_linkSource")
        msg["_linkSource"] = [
            *(stack if isinstance(stack, list) else []),
            {"id": call_id, "node": self.rt.id},
        ]
        delay = max(float(timeout_ms), 0.0) / 1000
        self.link_calls[call_id] = self.loop.call_later(delay, self._link_settled, call_id, None)
        self.pending.append(lambda: link_in.receive(msg))
        return call_id

    def returned(self, call_id: Any, msg: Msg) -> None:
        """A ``link out`` node in return mode answers a ``node.linkcall``."""
        self._link_settled(call_id, msg)

    def _link_settled(self, call_id: Any, msg: Msg | None) -> None:
        handle = self.link_calls.pop(call_id, None) if isinstance(call_id, int) else None
        if handle is None or self.js is None:
            return  # timed out already, or restarted since
        handle.cancel()
        if msg is None:
            self._call(self.link_return_js, None, call_id, None, False, "timeout")
            return
        text, marked = encode(msg, self.handles)
        self._call(self.link_return_js, None, call_id, text, marked, None)

    def _host_crypto(self, op: str, arg: str | None, key: str | None, data: str | None) -> str:
        if op == "uuid":
            return str(uuid.uuid4())
        if op == "random":
            return os.urandom(int(arg or 0)).hex()
        return _digest(arg or "", key, data or "")
