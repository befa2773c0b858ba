"""exec: real subprocesses in exec (bash) and spawn mode; kill, timeout, return codes, stop."""

import asyncio
import os
import sys
import time
from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def flow(**config: Any) -> list[dict[str, Any]]:
    node = {
        "id": "x",
        "type": "exec",
        "command": "echo",
        "addpay": "payload",
        "append": "",
        "useSpawn": "false",
        "timer": "",
        "winHide": False,
        "oldrc": False,
        "name": "",
        "wires": [["out"], ["err"], ["rc"]],
    }
    node.update(config)
    return [
        node,
        {"id": "out", "type": "helper"},
        {"id": "err", "type": "helper"},
        {"id": "rc", "type": "helper"},
    ]


def texts(h: FlowHarness) -> list[str]:
    return [s.get("text", "") for s in h.statuses("x")]


def running_pid(h: FlowHarness) -> int:
    return int(next(t for t in texts(h) if t.startswith("pid:"))[4:])


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_exec_mode_appends_the_payload_and_reports_code_zero() -> None:
    async with FlowHarness(flow(append="--and 'quoted  text'")) as h:
        h.receive("x", {"payload": 42, "topic": "t"})
        (out,) = await h.wait("out")
        (rc,) = await h.wait("rc")
        assert out["payload"] == "42 --and quoted  text\n"
        assert out["rc"] == {"code": 0}
        assert (out["topic"], rc["topic"], rc["payload"]) == ("t", "t", {"code": 0})
        await h.quiet(0.05)
        assert "err" not in h.messages
        assert texts(h)[0].startswith("pid:")
        assert h.statuses("x")[-1] == {}


async def test_exec_mode_failure_sends_stderr_and_the_error_on_the_third_output() -> None:
    command = "echo out; echo oops >&2; exit 3"
    async with FlowHarness(flow(command=command, addpay="")) as h:
        h.receive("x", {"payload": "ignored"})
        (rc,) = await h.wait("rc")
        (out,) = await h.wait("out")
        (err,) = await h.wait("err")
        failure = {"code": 3, "message": f"Command failed: {command}\noops\n"}
        assert rc["payload"] == failure
        assert (out["payload"], out["rc"]) == ("out\n", failure)
        assert (err["payload"], err["rc"]) == ("oops\n", failure)
        assert h.statuses("x")[-1] == {"fill": "red", "shape": "dot", "text": "error:3"}


async def test_output_that_is_not_utf8_is_a_buffer_and_old_style_has_no_return_message() -> None:
    async with FlowHarness(flow(command="printf '\\377\\376'", addpay=False, oldrc=True)) as h:
        h.receive("x", {"payload": "x"})
        (out,) = await h.wait("out")
        await h.quiet(0.05)
        assert out["payload"] == b"\xff\xfe"
        assert "rc" not in out
        assert "rc" not in h.messages


async def test_exec_timeout_kills_the_whole_command_group() -> None:
    # Without the group kill, bash's child `sleep` would hold stdout open for 30 s.
    command = "sleep 30; echo never"
    async with FlowHarness(flow(command=command, addpay="", timer="0.2")) as h:
        started = time.monotonic()
        h.receive("x", {"payload": ""})
        (rc,) = await h.wait("rc", timeout=10)
        print(f"exec timeout 0.2 s answered after {time.monotonic() - started:.2f} s")
        assert rc["payload"] == {
            "code": None,
            "message": f"Command failed: {command}\n",
            "signal": "SIGTERM",
        }
        assert h.messages["out"][0]["payload"] == ""
        assert h.statuses("x")[-1]["text"] == "killed"


async def test_exec_output_past_ten_megabytes_is_cut_and_reported() -> None:
    async with FlowHarness(flow(command="head -c 10000100 /dev/zero", addpay="")) as h:
        h.receive("x", {"payload": ""})
        (rc,) = await h.wait("rc", timeout=20)
        assert rc["payload"] == {
            "code": "ERR_CHILD_PROCESS_STDIO_MAXBUFFER",
            "message": "stdout maxBuffer length exceeded",
        }
        assert len(h.messages["out"][0]["payload"]) == 10_000_000


async def test_spawn_mode_streams_output_and_splits_quoted_arguments() -> None:
    script = "import sys; print(sys.argv[1:], flush=True); sys.stderr.write('e'); sys.exit(2)"
    command = f'{sys.executable} -c "{script}" "a b" c'
    async with FlowHarness(flow(command=command, useSpawn="true", addpay="payload")) as h:
        h.receive("x", {"payload": "d"})
        (rc,) = await h.wait("rc")
        # one message per chunk the program wrote; how the pipe splits them is not fixed
        assert "".join(m["payload"] for m in h.messages["out"]) == "['a b', 'c', 'd']\n"
        assert [m["payload"] for m in h.messages["err"]] == ["e"]
        assert rc["payload"] == {"code": 2}
        assert h.statuses("x")[-1] == {"fill": "yellow", "shape": "dot", "text": "rc:2"}


async def test_spawn_success_ends_yellow_rc_0_as_node_red_does_and_old_style_code() -> None:
    async with FlowHarness(flow(command="true", useSpawn="true", addpay="", oldrc="true")) as h:
        h.receive("x", {"payload": ""})
        (rc,) = await h.wait("rc")
        assert rc["payload"] == 0
        assert h.statuses("x")[-1] == {"fill": "yellow", "shape": "dot", "text": "rc:0"}


async def test_spawn_of_a_missing_program_returns_minus_enoent() -> None:
    async with FlowHarness(flow(command="/no/such/program", useSpawn="true", addpay="")) as h:
        h.receive("x", {"payload": ""})
        (rc,) = await h.wait("rc")
        assert rc["payload"] == {"code": -2}
        assert h.statuses("x")[-1] == {"fill": "red", "shape": "dot", "text": "rc:-2"}


async def test_msg_kill_signals_the_running_command_or_the_named_pid() -> None:
    async with FlowHarness(flow(command="sleep 30", useSpawn="true", addpay="")) as h:
        h.receive("x", {"payload": ""})
        await h.until(lambda: any(t.startswith("pid:") for t in texts(h)), 10)
        h.receive("x", {"kill": "nonsense"})  # not a SIG name: SIGTERM
        (rc,) = await h.wait("rc", timeout=10)
        assert rc["payload"] == {"code": None, "signal": "SIGTERM"}
        assert h.statuses("x")[-1]["text"] == "killed"

        h.receive("x", {"payload": ""})
        h.receive("x", {"payload": ""})
        await h.until(lambda: len(h.node("x").running) == 2, 10)  # type: ignore[attr-defined]  # ExecNode
        h.receive("x", {"kill": "SIGKILL"})  # two running and no pid: nothing happens
        await h.quiet(0.1)
        assert len(h.messages["rc"]) == 1
        pid = int(next(iter(h.node("x").running)))  # type: ignore[attr-defined]  # ExecNode
        h.receive("x", {"kill": "sigkill", "pid": pid})
        (_, second) = await h.wait("rc", 2, timeout=10)
        assert second["payload"] == {"code": None, "signal": "SIGKILL"}
        (left,) = h.node("x").running  # type: ignore[attr-defined]  # ExecNode
        h.receive("x", {"kill": "SIGNOPE", "pid": left})
        await h.until(lambda: h.logs())
        assert h.logs()[-1]["msg"] == "Unknown signal: SIGNOPE"


async def test_stopping_the_node_kills_what_still_runs() -> None:
    async with FlowHarness(flow(command="sleep 30", addpay="")) as h:
        h.receive("x", {"payload": ""})
        await h.until(lambda: any(t.startswith("pid:") for t in texts(h)), 10)
        pid = running_pid(h)
        started = time.monotonic()
    print(f"exec stop took {time.monotonic() - started:.2f} s")
    for _ in range(100):
        if gone(pid):
            break
        await asyncio.sleep(0.02)
    assert gone(pid)
    assert "rc" not in h.messages


@pytest.mark.parametrize("timer", ["soon", "-1"])
async def test_a_timeout_that_is_not_a_number_of_seconds_is_refused(timer: str) -> None:
    with pytest.raises(DeployError, match="timeout must be"):
        async with FlowHarness(flow(timer=timer)):
            pass


@pytest.mark.parametrize("spawn", ["true", "false"])
async def test_a_command_line_with_a_nul_byte_is_a_node_error(spawn: str) -> None:
    async with FlowHarness(flow(useSpawn=spawn)) as h:
        h.receive("x", {"payload": "a\x00b"})
        await h.until(lambda: h.logs(), 10)
        assert h.logs()[0]["msg"] == "exec: embedded null byte"
        await h.quiet(0.05)
        assert "out" not in h.messages
        assert "rc" not in h.messages
