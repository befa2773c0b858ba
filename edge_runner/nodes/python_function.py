"""``python-function``: a Python function body run per message (Manifold's ``function`` node).

The body is compiled once, at start, as the body of
``def f(msg, node, context, flow, global_, env)`` and called directly for every message (no
per-message compilation, no event-loop turn). Every call runs under the watchdog
(``edge_runner.runtime.watchdog``): a body that spends more than its limit in its own code
(``timeout`` seconds; 0 means the default of 4 s) or drives the process over the soft memory
limit is interrupted, the message is reported as an error (catchable), the node turns red;
five interruptions within a minute mark the node CRASHED (red, no more messages until the next
deploy). Bodies that contain ``await`` are compiled as coroutines and run as tasks (bounded by
``MAX_ASYNC_PENDING``); the watchdog does not cover them.
"""

from __future__ import annotations

import asyncio
import builtins
import importlib
import io
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import field_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    NodeStatus,
    register,
)
from edge_runner.runtime.containment import is_node_failure
from edge_runner.runtime.watchdog import DEFAULT_LIMIT_S, Frame, WatchdogInterrupt, watchdog_of

CRASH_KILLS = 5
CRASH_WINDOW_S = 60.0
MAX_ASYNC_PENDING = 1000
_ARGS = "msg, node, context, flow, global_, env"


class Config(NodeConfig):
    func: str = "\nreturn msg"
    outputs: int = 1
    timeout: float = 0
    noerr: int = 0
    initialize: str = ""
    finalize: str = ""
    libs: list[dict[str, str]] = []

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return 0 if value in (None, "") else value

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, value: int) -> int:
        if not 0 <= value <= 64:
            raise ValueError("outputs must be between 0 and 64")
        return value


_Config = Config  # the class attribute below shadows the name inside the node class

SPEC = NodeSpec(
    type="python-function",
    version=1,
    category=Category.FUNCTION,
    inputs=1,
    outputs=1,
    dynamic_outputs="outputs",
    label="python function",
    color="#fdd0a2",
    icon="function.svg",
    help="""A Python function to run against the messages the node receives.

### Inputs
Any message, available to the code as `msg` (a dict).

### Outputs
What the code returns: a dict goes to the first output; a list has one entry per output
(a dict, a list of dicts to send several messages, or `None`); `None` sends nothing.

### Details
The code is the body of a function with these names bound:

- `msg`: the message.
- `node`: `node.send(msg_or_list, clone=True)` (sends now; `clone=False` sends without a copy),
  `node.done()`, `node.warn(x)`, `node.error(x, msg=None)` (with `msg`, catch nodes receive it),
  `node.log(x)`, `node.status({"fill": "green", "shape": "dot", "text": "ok"})`, `node.id`,
  `node.name`, `node.outputs`.
- `context`, `flow`, `global_`: node, flow and global context (`get(key, default=None)`,
  `set(key, value)`, `keys()`; `store=` picks a named store).
- `env`: `env.get("NAME")` reads environment variables (node, group, subflow, flow, global).

**initialize** runs once when the node starts and **finalize** when it stops (same names, no
`msg`). **libs**: `[{"var": "np", "module": "numpy"}]` makes modules available by name; the
standard library can also be imported in the code.

**timeout** (seconds): the longest the code may run for one message, not counting the time
downstream nodes take for messages it sends; 0 means the default (4 s). An overrunning call is
interrupted and reported as an error; five interruptions within a minute crash the node (red
status, messages dropped) until it is deployed again. Code using `await` runs as a task and is
not time-limited.
""",
)


def _indent_body(body: str) -> str:
    """Indent a body by four spaces without touching continuation lines of multi-line strings."""
    import tokenize  # only needed while compiling (deploy), not at startup

    lines = body.splitlines() or ["pass"]
    keep: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(body).readline):
            if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                keep.update(range(token.start[0] + 1, token.end[0] + 1))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # compile() reports the real problem
    out = [line if number in keep else "    " + line for number, line in enumerate(lines, start=1)]
    return "\n".join(out) + "\n    pass\n"


def compile_body(
    body: str, args: str, filename: str, env: dict[str, Any]
) -> tuple[Callable[..., Any], bool]:
    """Compile ``body`` as a function of ``args``; returns (function, is_coroutine)."""
    for prefix in ("def", "async def"):
        source = f"{prefix} __manifold_body({args}):\n{_indent_body(body)}"
        try:
            code = compile(source, filename, "exec")
        except SyntaxError as exc:
            text = str(exc.msg)
            if prefix == "def" and ("await" in text or "async" in text):
                continue
            line = (exc.lineno or 1) - 1
            raise ValueError(f"syntax error in {filename} line {line}: {exc.msg}") from exc
        exec(code, env)  # noqa: S102  # running user code is this node's purpose
        fn = env.pop("__manifold_body")
        return fn, prefix == "async def"
    raise ValueError(f"{filename}: could not compile")


def describe(exc: BaseException, filename: str) -> str:
    """``TypeError: ... (line 3)`` with the line inside the user's body."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno - 1
        tb = tb.tb_next
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"{text} (line {line})" if line is not None else text


class EnvApi:
    """``env`` inside a function body."""

    __slots__ = ("_rt",)

    def __init__(self, rt: Any) -> None:
        self._rt = rt

    def get(self, name: str, default: Any = None) -> Any:
        value = self._rt.env(name)
        return default if value is None else value


class FunctionApi:
    """``node`` inside a function body."""

    __slots__ = ("_frame", "_msgid", "_owner", "_rt", "id", "name", "outputs")

    def __init__(self, owner: PythonFunctionNode) -> None:
        self._owner = owner
        self._rt = owner.rt
        self._frame: Frame | None = None
        self._msgid: Any = None
        self.id = owner.rt.id
        self.name = owner.rt.name
        self.outputs = owner.config.outputs

    def send(self, msg: Msg | list[Any] | None, clone: bool = True) -> None:
        if msg is None:
            return
        msgid = self._msgid
        if msgid is not None:
            if type(msg) is dict:
                msg["_msgid"] = msgid
            elif isinstance(msg, list):
                _stamp(msg, msgid)
        frame = self._frame
        if frame is None:
            self._rt.send(msg, clone=clone)
            return
        frame.pause()
        try:
            self._rt.send(msg, clone=clone)
        finally:
            frame.resume()

    def done(self, msg: Msg | None = None) -> None:
        self._rt.done(msg if msg is not None else {"_msgid": self._msgid})

    def warn(self, text: Any) -> None:
        self._rt.warn(text)

    def error(self, err: Any, msg: Msg | None = None) -> None:
        self._rt.error(err, msg)

    def log(self, text: Any) -> None:
        self._rt.log(text)

    def status(self, *args: Any, **kwargs: Any) -> None:
        if len(args) == 1 and isinstance(args[0], dict):
            data = args[0]
            self._rt.status(
                NodeStatus(data.get("fill"), data.get("shape"), str(data.get("text", "")))
            )
        elif len(args) == 1 and isinstance(args[0], str) and not kwargs:
            self._rt.status(NodeStatus(None, None, args[0]))
        else:
            self._rt.status(NodeStatus(*args, **kwargs))


def _stamp(msgs: list[Any], msgid: Any) -> None:
    for item in msgs:
        if type(item) is dict:
            item["_msgid"] = msgid
        elif isinstance(item, list):
            for one in item:
                if type(one) is dict:
                    one["_msgid"] = msgid


@register
class PythonFunctionNode(Node):
    """Runs the configured Python body for every message, under the watchdog."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = _Config
    config: _Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        cfg = self.config
        self.filename = f"<python-function {runtime.id}>"
        self.limit = float(cfg.timeout) if cfg.timeout and cfg.timeout > 0 else DEFAULT_LIMIT_S
        self.globals: dict[str, Any] = {
            "__builtins__": builtins,
            "__name__": f"python_function_{runtime.id}",
        }
        # compiled here so a syntax error rejects the deploy with a per-node error
        self.fn, self.is_coroutine = compile_body(cfg.func, _ARGS, self.filename, self.globals)
        self.setup = (
            compile_body(
                cfg.initialize,
                "node, context, flow, global_, env",
                self.filename + " initialize",
                self.globals,
            )
            if cfg.initialize.strip()
            else None
        )
        self.close = (
            compile_body(
                cfg.finalize,
                "node, context, flow, global_, env",
                self.filename + " finalize",
                self.globals,
            )
            if cfg.finalize.strip()
            else None
        )
        runtime.manual_done = "node.done" in cfg.func
        self.api = FunctionApi(self)
        self.env_api = EnvApi(runtime)
        self.watchdog = watchdog_of(runtime.services)
        self.crashed = False
        self.kills: deque[float] = deque(maxlen=CRASH_KILLS)
        self.dropped = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self._free: Frame | None = Frame(self.filename, self.limit)
        self._watching = False

    async def start(self) -> None:
        for lib in self.config.libs:
            var, module = lib.get("var"), lib.get("module")
            if not var or not module or not str(var).isidentifier():
                raise NodeFailed(f"libs entries need a 'var' name and a 'module': {lib!r}")
            try:
                self.globals[var] = importlib.import_module(module)
            except ImportError as exc:
                raise NodeFailed(f"cannot import module {module!r}: {exc}") from exc
        self.watchdog.acquire()
        self._watching = True
        if self.setup is not None:
            await self._run_hook(self.setup, "initialize")

    async def _run_hook(self, hook: tuple[Callable[..., Any], bool], what: str) -> None:
        fn, is_coroutine = hook
        rt = self.rt
        frame = Frame(self.filename, self.limit)
        stack = self.watchdog.stack
        stack.append(frame)
        try:
            try:
                result = fn(self.api, rt.context, rt.flow, rt.global_, self.env_api)
            finally:
                frame.in_own = False
                if stack and stack[-1] is frame:
                    stack.pop()
            if is_coroutine or hasattr(result, "__await__"):
                await result
        except WatchdogInterrupt as exc:
            raise NodeFailed(f"{what} interrupted: {exc.reason}") from None
        except BaseException as exc:  # sys.exit() in initialize fails the node, not the runner
            if not is_node_failure(exc):
                raise
            raise NodeFailed(f"{what} failed: {describe(exc, self.filename + ' ' + what)}") from exc

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        self.tasks.clear()
        try:
            if self.close is not None:
                await self._run_hook(self.close, "finalize")
        finally:
            if self._watching:
                self._watching = False
                self.watchdog.release()

    # ------------------------------------------------------------------ messages
    def on_message(self, msg: Msg) -> None:
        if self.crashed:
            self.dropped += 1
            return
        rt = self.rt
        api = self.api
        frame = self._free
        if frame is None:  # re-entered (a wire loop back into this node): a frame of its own
            frame = Frame(self.filename, self.limit)
        else:
            self._free = None
            frame.own = 0.0
            frame.in_own = True
            frame.seg = time.perf_counter()
        saved_frame, saved_id = api._frame, api._msgid
        api._frame = frame
        msgid = api._msgid = msg.get("_msgid")
        stack = self.watchdog.stack
        try:
            stack.append(frame)
            try:
                result = self.fn(msg, api, rt.context, rt.flow, rt.global_, self.env_api)
            finally:
                frame.in_own = False
                if stack and stack[-1] is frame:
                    stack.pop()
                api._frame, api._msgid = saved_frame, saved_id
                if saved_frame is None:
                    self._free = frame
        except WatchdogInterrupt as exc:
            self._interrupted(exc, msg)
            return
        except NodeFailed:
            raise
        except BaseException as exc:  # sys.exit() in the body fails the message, not the runner
            if not is_node_failure(exc):
                raise
            raise NodeFailed(describe(exc, self.filename)) from exc
        if result is None:
            return
        if self.is_coroutine:
            self._spawn(result, msg)
            return
        self._send_result(result, msgid)

    def _send_result(self, result: Any, msgid: Any) -> None:
        if type(result) is dict:
            if msgid is not None:
                result["_msgid"] = msgid
            self.rt.send(result)
        elif isinstance(result, list):
            if msgid is not None:
                _stamp(result, msgid)
            self.rt.send(result[: max(self.config.outputs, 1)])
        else:
            raise NodeFailed(
                f"the function returned a {type(result).__name__}; "
                "return a dict, a list per output, or None"
            )

    def _spawn(self, coro: Any, msg: Msg) -> None:
        if len(self.tasks) >= MAX_ASYNC_PENDING:
            coro.close()
            raise NodeFailed(f"too many pending async calls ({MAX_ASYNC_PENDING})")
        task = asyncio.get_running_loop().create_task(self._contained(coro))
        self.tasks.add(task)
        task.add_done_callback(lambda t: self._finished(t, msg))

    async def _contained(self, coro: Any) -> Any:
        # asyncio re-raises SystemExit and KeyboardInterrupt from a task out of the event
        # loop, which would end the runner: they become this message's error instead.
        try:
            return await coro
        except BaseException as exc:
            if isinstance(exc, Exception) or not is_node_failure(exc):
                raise
            raise NodeFailed(describe(exc, self.filename)) from exc

    def _finished(self, task: asyncio.Task[Any], msg: Msg) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, NodeFailed):
            self.rt.error(exc, msg)
            return
        if exc is not None:
            self.rt.error(describe(exc, self.filename), msg)
            return
        try:
            if task.result() is not None:
                self._send_result(task.result(), msg.get("_msgid"))
        except NodeFailed as failed:
            self.rt.error(failed, msg)
        else:
            if self.rt.watched and not self.rt.manual_done:
                self.rt.done(msg)

    def _interrupted(self, exc: WatchdogInterrupt, msg: Msg) -> None:
        now = time.monotonic()
        self.kills.append(now)
        if len(self.kills) >= CRASH_KILLS and now - self.kills[0] <= CRASH_WINDOW_S:
            self.crashed = True
            self.rt.status(NodeStatus("red", "ring", f"crashed: interrupted {CRASH_KILLS} times"))
            self.rt.error(
                f"CRASHED: interrupted {CRASH_KILLS} times within "
                f"{CRASH_WINDOW_S:g} s ({exc.reason}); dropping messages until the "
                "next deploy",
                msg,
            )
            return
        self.rt.status(NodeStatus("red", "dot", f"interrupted: {exc.reason}"[:60]))
        self.rt.error(f"interrupted by the watchdog: {exc.reason}", msg)
