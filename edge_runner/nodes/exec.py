"""``exec``: run a system command (exec or spawn mode), Node-RED's three outputs.

Trust model: whoever can deploy a flow can run any command as the runner's user, exactly as
with Node-RED (and as with ``python-function``). In exec mode the command line is given to
``/bin/bash -c`` (``/bin/sh`` without bash), as Node-RED does, so the payload appended to it is
shell text: a flow that appends untrusted input runs untrusted shell code. Spawn mode runs the
program directly with the line split on spaces, no shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import signal
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from pydantic import field_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeSpec,
    clone_msg,
    get_property,
    parse_path,
    register,
)
from edge_runner.nodes._sequence import js_string

SHELL = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
MAX_BUFFER = 10_000_000  # Node-RED's default execMaxBufferSize, per stream in exec mode
CHUNK = 65536
STOP_GRACE = 2.0  # seconds between SIGTERM and SIGKILL when the node stops
# Node-RED's spawn-mode split: runs of non-space characters and "quoted strings"
_ARGUMENT = re.compile(r'(?:[^\s"]+|"[^"]*")+')
_ABSENT = object()


class Config(NodeConfig):
    command: str = ""
    # Node-RED: absent or true means msg.payload, "" or false means nothing appended
    addpay: bool | str = True
    append: str = ""
    useSpawn: bool | str = "false"  # noqa: N815  # Node-RED's field name
    timer: str = ""
    winHide: bool = False  # noqa: N815  # Node-RED's field name (Windows only)
    oldrc: bool | str = False

    @field_validator("timer", mode="before")
    @classmethod
    def _timer_text(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return "" if value is None else value

    @field_validator("timer")
    @classmethod
    def _valid_timer(cls, value: str) -> str:
        text = value.strip()
        try:
            seconds = float(text) if text else 0.0
        except ValueError:
            raise ValueError(f"timeout must be a number of seconds, not {value!r}") from None
        if not seconds >= 0:
            raise ValueError(f"timeout must be zero or more seconds, not {value!r}")
        return text

    @field_validator("addpay")
    @classmethod
    def _valid_property(cls, value: bool | str) -> bool | str:
        if isinstance(value, str) and value:
            parse_path(value)
        return value


SPEC = NodeSpec(
    type="exec",
    version=1,
    category=Category.FUNCTION,
    inputs=1,
    outputs=3,
    label="exec",
    color="darksalmon",
    icon="cog.svg",
    output_labels=("stdout", "stderr", "return code"),
    help="""Runs a system command and returns its output.

**Whoever can deploy can run code**: the command runs as the runner's user, with its rights.

### Inputs
- **payload**: appended to the command line when *Append msg.payload* names it (any message
  property can be named; `""` appends nothing).
- **kill** *string*: sends that signal (`SIGTERM` when not a `SIG...` name) to the running
  command, or to the one whose process id is in **pid** when several run.
- **pid**: the process to kill.

### Outputs
1. Standard output: **payload** is a string, or a buffer when the output is not UTF-8. In exec
   mode one message when the command ends, with **rc** (the return code object) when there is
   one; in spawn mode one message per chunk while it runs.
2. Standard error, the same way (exec mode: only when there was any).
3. Return code: **payload** is `{code}` (plus `signal` when a signal ended it, and `message`
   in exec mode when it failed); with *old style output* just the code.

### Details
*exec mode* (`useSpawn: "false"`) runs the whole line with `/bin/bash -c` and waits for the
end (at most 10 MB per stream); *spawn mode* runs the program directly, the line split at spaces
(`"quoted parts"` stay together) and streams its output. *Timeout* (seconds, empty = none) sends
`SIGTERM`. Status: `pid:<pid>` while it runs; then `killed`, `error:<code>` (exec) or `rc:<code>`
(spawn). The signal goes to the command's whole process group, so a shell's children stop too.
Standard input is empty. Stopping or redeploying the node kills what is still running.
""",
)


def _decode(data: bytes) -> str | bytes:
    """Node-RED's ``isUtf8`` choice: text when the bytes are UTF-8, the buffer otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _signal_name(code: int | None) -> str | None:
    if code is None or code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"SIG{-code}"


async def _open(*argv: str) -> asyncio.subprocess.Process:
    # Its own session: one killpg reaches the command and everything it started. Standard
    # input is empty (Node-RED leaves a pipe open that nobody writes, so readers hang).
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


@dataclass
class _Run:
    """One running command."""

    process: asyncio.subprocess.Process | None = None
    timer: asyncio.TimerHandle | None = None
    overflow: str = ""  # "stdout" / "stderr" when that stream passed MAX_BUFFER


@register
class ExecNode(Node):
    """Run a system command; stdout, stderr and the return code on three outputs."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        config = cast(Config, config)
        self.rt.manual_done = True
        self.command = config.command.strip()
        addpay = "payload" if config.addpay is True else config.addpay
        self.property = parse_path(addpay) if isinstance(addpay, str) and addpay else None
        self.append = config.append.strip()
        self.spawn = config.useSpawn in (True, "true")
        self.timeout = float(config.timer) if config.timer else 0.0
        self.old_style = str(config.oldrc).lower() == "true"
        self.running: dict[str, _Run] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False

    # ---------------------------------------------------------------- input
    def on_message(self, msg: Msg) -> None:
        if "kill" in msg:
            self._kill_requested(msg)
            self.done(msg)
            return
        line = self.command
        if self.property is not None:
            value = get_property(msg, self.property, _ABSENT)
            if value is not _ABSENT:
                line += " " + js_string(value)
        if self.append:
            line += " " + self.append
        task = asyncio.get_running_loop().create_task(self._run(msg, line))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, msg: Msg, line: str) -> None:
        try:
            await (self._spawn(msg, line) if self.spawn else self._exec(msg, line))
        except ValueError as exc:  # a command line the OS cannot take (a NUL byte)
            self.error(f"exec: {exc}", msg)
            self.done(msg)

    def _kill_requested(self, msg: Msg) -> None:
        name = msg["kill"]
        if not isinstance(name, str) or not name.upper().startswith("SIG"):
            name = "SIGTERM"
        name = name.upper()
        if "pid" in msg:
            run = self.running.get(js_string(msg["pid"]))
        else:
            run = next(iter(self.running.values())) if len(self.running) == 1 else None
        if run is None:
            return
        try:
            number = signal.Signals[name]
        except KeyError:
            self.error(f"Unknown signal: {name}", msg)
            return
        self._signal(run, number)
        self.status("red", "dot", "killed")

    @staticmethod
    def _signal(run: _Run, number: int) -> None:
        process = run.process
        if process is None or process.returncode is not None:
            return
        # The command runs in its own session: its process group is its pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, number)

    def _started(
        self, run: _Run, process: asyncio.subprocess.Process
    ) -> tuple[str, asyncio.StreamReader, asyncio.StreamReader]:
        if process.stdout is None or process.stderr is None:
            raise RuntimeError("exec: the command's output pipes are missing")
        run.process = process
        pid = str(process.pid)
        self.running[pid] = run
        self.status("blue", "dot", f"pid:{pid}")
        if self.timeout > 0:
            run.timer = asyncio.get_running_loop().call_later(
                self.timeout, self._signal, run, signal.SIGTERM
            )
        return pid, process.stdout, process.stderr

    def _finished(self, run: _Run, pid: str) -> None:
        if run.timer is not None:
            run.timer.cancel()
        self.running.pop(pid, None)

    # ---------------------------------------------------------------- exec mode
    async def _exec(self, msg: Msg, line: str) -> None:
        run = _Run()
        try:
            process = await _open(SHELL, "-c", line)
        except OSError as exc:
            self._exec_result(msg, line, b"", b"", None, exc)
            return
        pid, stdout_pipe, stderr_pipe = self._started(run, process)
        try:
            stdout, stderr = await asyncio.gather(
                self._collect(run, stdout_pipe, "stdout"),
                self._collect(run, stderr_pipe, "stderr"),
            )
            code = await process.wait()
        finally:
            self._finished(run, pid)
        if not self.closing:
            self._exec_result(msg, line, stdout, stderr, run, code)

    async def _collect(self, run: _Run, stream: asyncio.StreamReader, name: str) -> bytes:
        data = bytearray()
        while chunk := await stream.read(CHUNK):
            if run.overflow:
                continue  # drain what the killed command still writes
            data += chunk
            if len(data) > MAX_BUFFER:
                del data[MAX_BUFFER:]
                run.overflow = name
                self._signal(run, signal.SIGTERM)
        return bytes(data)

    def _exec_result(
        self,
        msg: Msg,
        line: str,
        stdout: bytes,
        stderr: bytes,
        run: _Run | None,
        outcome: int | OSError,
    ) -> None:
        msg.pop("payload", None)
        msg2 = None
        if stderr:
            msg2 = clone_msg(msg)
            msg2["payload"] = _decode(stderr)
        msg["payload"] = _decode(stdout)
        self.status()
        error: dict[str, Any] | None = None
        if isinstance(outcome, OSError):
            name = errno.errorcode.get(outcome.errno or 0, "EIO")
            error = {"code": name, "message": f"spawn {SHELL} {name}"}
        elif run is not None and run.overflow:
            error = {
                "code": "ERR_CHILD_PROCESS_STDIO_MAXBUFFER",
                "message": f"{run.overflow} maxBuffer length exceeded",
            }
        elif outcome != 0:
            # Node-RED reads the output as "binary" (latin-1) text: the same characters here.
            text = stderr.decode("latin-1")
            error = {
                "code": outcome if outcome > 0 else None,
                "message": f"Command failed: {line}\n{text}",
            }
            if outcome < 0:
                error["signal"] = _signal_name(outcome)
        msg3 = None
        if error is not None:
            msg3 = clone_msg(msg)
            msg3["payload"] = error
            if error["code"] is None:
                self.status("red", "dot", "killed")
            else:
                self.status("red", "dot", f"error:{error['code']}")
        elif not self.old_style:
            msg3 = clone_msg(msg)
            msg3["payload"] = {"code": 0}
        if msg3 is not None:
            msg["rc"] = msg3["payload"]
            if msg2 is not None:
                msg2["rc"] = msg3["payload"]
        self.send([msg, msg2, msg3])
        self.done(msg)

    # ---------------------------------------------------------------- spawn mode
    async def _spawn(self, msg: Msg, line: str) -> None:
        words = [
            w[1:-1] if len(w) > 1 and w[0] == w[-1] == '"' else w for w in _ARGUMENT.findall(line)
        ]
        if not words:
            self.error("exec: no command to run", msg)
            self.done(msg)
            return
        run = _Run()
        try:
            process = await _open(*words)
        except OSError as exc:
            # Node.js reports a command that cannot start as exit code -errno (-2: ENOENT),
            # after Node-RED showed its (undefined) pid.
            self.status("blue", "dot", "pid:undefined")
            self._spawn_closed(msg, -(exc.errno or 1), None)
            return
        pid, stdout_pipe, stderr_pipe = self._started(run, process)
        try:
            await asyncio.gather(
                self._stream(msg, stdout_pipe, 0), self._stream(msg, stderr_pipe, 1)
            )
            code = await process.wait()
        finally:
            self._finished(run, pid)
        if not self.closing:
            if code < 0:
                self._spawn_closed(msg, None, _signal_name(code))
            else:
                self._spawn_closed(msg, code, None)

    async def _stream(self, msg: Msg, stream: asyncio.StreamReader, port: int) -> None:
        while chunk := await stream.read(CHUNK):
            if self.closing:
                continue
            msg["payload"] = _decode(chunk)
            out: list[Msg | None] = [None, None, None]
            out[port] = clone_msg(msg)
            self.send(out)

    def _spawn_closed(self, msg: Msg, code: int | None, signal_name: str | None) -> None:
        if self.old_style:
            msg["payload"] = code
        else:
            msg["payload"] = {"code": code}
            if signal_name:
                msg["payload"]["signal"] = signal_name
        # Node-RED's order of checks: a clean exit clears the status, then shows a yellow rc:0.
        if code == 0:
            self.status()
        if code is None:
            self.status("red", "dot", "killed")
        elif code < 0:
            self.status("red", "dot", f"rc:{code}")
        else:
            self.status("yellow", "dot", f"rc:{code}")
        self.send([None, None, clone_msg(msg)])
        self.done(msg)

    # ---------------------------------------------------------------- stop
    async def stop(self) -> None:
        self.closing = True
        for run in list(self.running.values()):
            if run.timer is not None:
                run.timer.cancel()
            self._signal(run, signal.SIGTERM)
        if self.tasks:
            _, pending = await asyncio.wait(list(self.tasks), timeout=STOP_GRACE)
            if pending:
                for run in list(self.running.values()):
                    self._signal(run, signal.SIGKILL)
                await asyncio.wait(pending, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
        self.running.clear()
        self.status()
