"""python-function: Node-RED's function-node semantics in Python, and the watchdog (family 27)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from edge_runner.nodes.python_function import PythonFunctionNode
from edge_runner.runtime.engine import DeployError, Engine
from edge_runner.runtime.watchdog import watchdog_of
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def fn(
    node_id: str, body: str, wires: list[list[str]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "python-function",
        "func": body,
        "outputs": 1,
        "wires": wires if wires is not None else [["cap"]],
        **extra,
    }


CAP = {"id": "cap", "type": "helper"}


async def test_returned_dict_goes_to_the_first_output_with_the_input_msgid() -> None:
    async with FlowHarness([fn("f", "msg['payload'] *= 2\nreturn msg"), CAP]) as h:
        h.receive("f", {"payload": 21, "_msgid": "abc"})
        (out,) = await h.wait("cap")
        assert out == {"payload": 42, "_msgid": "abc"}


async def test_list_result_goes_one_entry_per_output_and_none_sends_nothing() -> None:
    body = "return [None, [{'payload': 1}, {'payload': 2}], {'payload': 3}]"
    flow = [
        fn("f", body, [["a"], ["b"], ["c"]], outputs=3),
        {"id": "a", "type": "helper"},
        {"id": "b", "type": "helper"},
        {"id": "c", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("f", {"payload": 0})
        assert [m["payload"] for m in await h.wait("b", 2)] == [1, 2]
        assert [m["payload"] for m in await h.wait("c", 1)] == [3]
        await h.quiet(0.05)
        assert "a" not in h.messages


async def test_node_send_clones_by_default_and_not_with_clone_false() -> None:
    body = (
        "shared = {'payload': [1]}\n"
        "node.send(shared)\n"
        "node.send(shared, clone=False)\n"
        "shared['payload'].append(2)\n"
    )
    flow = [
        fn("f", body, [["probe"]]),
        {
            "id": "probe",
            "type": "python-function",
            "wires": [],
            "func": "context.set('seen', context.get('seen', []) + [msg])",
        },
    ]
    async with FlowHarness(flow) as h:
        h.receive("f", {"payload": None})
        await asyncio.sleep(0)
        seen = h.engine.nodes["probe"].context.get("seen")
        assert seen[0]["payload"] == [1]  # copied before the later append
        assert seen[1]["payload"] == [1, 2]  # the very object the body kept


async def test_context_flow_global_env_and_setup_body() -> None:
    body = (
        "context.set('n', context.get('n', 0) + 1)\n"
        "return {'payload': [context.get('n'), flow.get('f'), global_.get('g'),"
        " env.get('WHO'), node.name]}"
    )
    flow = [
        {"id": "t1", "type": "tab", "env": [{"name": "WHO", "value": "tab-env", "type": "str"}]},
        fn(
            "f",
            body,
            z="t1",
            name="counter",
            initialize="flow.set('f', 'from-setup')\nglobal_.set('g', 7)",
        ),
        {**CAP, "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("f", {})
        h.receive("f", {})
        out = await h.wait("cap", 2)
        assert out[1]["payload"] == [2, "from-setup", 7, "tab-env", "counter"]


async def test_an_exception_is_caught_with_its_line_and_the_engine_keeps_running() -> None:
    flow = [
        fn("f", "x = 1\nreturn msg['missing']", [["cap"]]),
        {"id": "c", "type": "catch", "scope": None, "uncaught": False, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
        CAP,
    ]
    async with FlowHarness(flow) as h:
        h.receive("f", {"payload": "p"})
        (err,) = await h.wait("errs")
        assert err["payload"] == "p"
        assert err["error"]["message"] == "KeyError: 'missing' (line 2)"
        assert err["error"]["source"] == {"id": "f", "type": "python-function", "count": 1}


async def test_node_error_with_msg_reaches_catch_and_status_dict_is_reported() -> None:
    body = (
        "node.status({'fill': 'yellow', 'shape': 'ring', 'text': 'busy'})\n"
        "node.error('bad input', msg)"
    )
    flow = [
        fn("f", body, [[]]),
        {"id": "c", "type": "catch", "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("f", {"payload": 1})
        (err,) = await h.wait("errs")
        assert err["error"]["message"] == "bad input"
        assert h.statuses("f") == [{"fill": "yellow", "shape": "ring", "text": "busy"}]


async def test_syntax_error_rejects_the_deploy_with_a_per_node_error() -> None:
    async with FlowHarness([CAP]) as h:
        with pytest.raises(DeployError) as info:
            await h.engine.deploy(
                [{"id": "t1", "type": "tab"}, {**fn("bad", "return (", [[]]), "z": "t1"}]
            )
        assert info.value.errors[0]["id"] == "bad"
        assert "syntax error" in info.value.errors[0]["error"]


async def test_await_in_the_body_runs_as_a_task() -> None:
    body = "import asyncio\nawait asyncio.sleep(0.01)\nmsg['payload'] = 'later'\nreturn msg"
    async with FlowHarness([fn("f", body), CAP]) as h:
        h.receive("f", {"payload": 1})
        (out,) = await h.wait("cap")
        assert out["payload"] == "later"


@pytest.mark.slow  # waits on the wall clock: outside `make test-fast`
async def test_infinite_loop_is_interrupted_while_another_flow_keeps_producing() -> None:
    """Family 27: the hog is killed within its limit (here 1 s) and a timer-driven flow on the
    same loop has no gap longer than the limit plus a tick."""
    flow = [
        fn("hog", "while True:\n    pass", [[]], timeout=1),
        {"id": "c", "type": "catch", "scope": ["hog"], "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
        CAP,
    ]
    async with FlowHarness(flow) as h:
        ticks: list[float] = []
        stop = False

        async def producer() -> None:
            while not stop:
                h.receive("cap", {"payload": "tick"})
                ticks.append(time.monotonic())
                await asyncio.sleep(0.02)

        task = asyncio.create_task(producer())
        await asyncio.sleep(0.1)
        started = time.monotonic()
        h.receive("hog", {"payload": "spin"})  # blocks the loop until the watchdog fires
        killed_after = time.monotonic() - started
        (err,) = await h.wait("errs")
        await asyncio.sleep(0.1)
        stop = True
        await task
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        print(
            f"\nwatchdog: killed after {killed_after * 1000:.0f} ms, "
            f"max producer gap {max(gaps) * 1000:.0f} ms"
        )
        assert 1.0 <= killed_after < 1.5
        assert max(gaps) < 2.0
        assert "interrupted by the watchdog" in err["error"]["message"]
        assert h.statuses("hog")[-1]["fill"] == "red"
        assert len(h.messages["cap"]) > 5  # the other flow produced before and after


async def test_sleeping_body_is_interrupted_too() -> None:
    flow = [
        fn("nap", "import time\ntime.sleep(30)", [[]], timeout=0.3),
        {"id": "c", "type": "catch", "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        started = time.monotonic()
        h.receive("nap", {})
        assert time.monotonic() - started < 1.0
        assert "time limit" in (await h.wait("errs"))[0]["error"]["message"]


async def test_except_exception_does_not_swallow_the_interrupt() -> None:
    body = "while True:\n    try:\n        sum(range(1000))\n    except Exception:\n        pass"
    flow = [
        fn("f", body, [[]], timeout=0.2),
        {"id": "c", "type": "catch", "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("f", {})
        await h.wait("errs")


@pytest.mark.slow  # waits on the wall clock: outside `make test-fast`
async def test_five_fast_kills_mark_the_node_crashed() -> None:
    flow = [
        fn("f", "while True:\n    pass", [[]], timeout=0.1),
        {"id": "c", "type": "catch", "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        for _ in range(6):
            h.receive("f", {})
        errors = await h.wait("errs", 5)
        assert "CRASHED" in errors[4]["error"]["message"]
        assert h.statuses("f")[-1] == {
            "fill": "red",
            "shape": "ring",
            "text": "crashed: interrupted 5 times",
        }
        node = h.node("f")
        assert isinstance(node, PythonFunctionNode)
        assert node.dropped == 1  # the sixth message was not run
        await h.quiet(0.05)
        assert len(h.messages["errs"]) == 5


async def test_generator_sending_many_messages_is_not_a_hog() -> None:
    """Time spent downstream of node.send does not count against the sender's limit."""
    gen = fn(
        "gen",
        "for i in range(int(msg['payload'])):\n    node.send({'payload': i}, clone=False)",
        [["slow"]],
        timeout=0.2,
    )
    slow = fn("slow", "import time\ntime.sleep(0.002)\nreturn msg", [["cap"]])
    async with FlowHarness([gen, slow, CAP]) as h:
        h.receive("gen", {"payload": 150})  # ~0.3 s downstream, far less in the body itself
        assert len(await h.wait("cap", 150)) == 150


async def test_watchdog_overhead_per_call_is_small() -> None:
    """Measured figure: calls per second through a trivial body (with watchdog bookkeeping)."""
    body = "return None"
    async with FlowHarness([fn("f", body, [[]])]) as h:
        node = h.node("f")
        assert isinstance(node, PythonFunctionNode)
        msg = {"payload": 1, "_msgid": "x"}
        n = 100_000
        started = time.perf_counter()
        for _ in range(n):
            node.on_message(msg)
        per_call = (time.perf_counter() - started) / n
        raw = node.fn  # the compiled body alone, same arguments
        rt = h.engine.nodes["f"]
        started = time.perf_counter()
        for _ in range(n):
            raw(msg, node.api, rt.context, rt.flow, rt.global_, node.env_api)
        bare = (time.perf_counter() - started) / n
        print(
            f"\npython-function call: {per_call * 1e9:.0f} ns with watchdog bookkeeping, "
            f"{bare * 1e9:.0f} ns bare body call (overhead {(per_call - bare) * 1e9:.0f} ns)"
        )
        # A figure, not a timed assertion: the 2-core CI box is loaded. The bookkeeping is
        # checked by what it leaves behind.
        assert not node.watchdog.stack
        assert node.watchdog is watchdog_of(h.engine.services)


@pytest.mark.slow  # waits on the wall clock: outside `make test-fast`
async def test_memory_hog_is_interrupted_at_the_soft_rss_limit() -> None:
    from edge_runner.runtime.watchdog import rss_mib

    body = (
        "import time\nheap = []\nwhile True:\n"
        "    heap.append(bytearray(1 << 20))\n    time.sleep(0.001)"
    )
    flow = [
        fn("hog", body, [[]], timeout=20),
        {"id": "c", "type": "catch", "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]
    engine = Engine()  # the limit is this engine's: its watchdog is its own service
    watchdog_of(engine.services).rss_limit_mib = rss_mib() + 150
    async with FlowHarness(flow, engine=engine) as h:
        started = time.monotonic()
        h.receive("hog", {})
        took = time.monotonic() - started
        (err,) = await h.wait("errs")
        print(f"\nmemory hog stopped after {took * 1000:.0f} ms")
        assert "memory limit exceeded" in err["error"]["message"]
        assert took < 5
