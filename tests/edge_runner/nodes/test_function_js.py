"""function: Node-RED's JavaScript function node on QuickJS, checked against Node-RED's outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_runner.runtime.paths import RunnerPaths
from edge_runner.runtime.server import Server
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

SNIPPETS = json.loads((Path(__file__).parent / "data" / "function_snippets.json").read_text())[1:]


def fn(node_id: str, body: str, outputs: int = 1, **extra: Any) -> dict[str, Any]:
    wires = extra.pop("wires", [[f"cap{p}"] for p in range(outputs)])
    return {
        "id": node_id,
        "type": "function",
        "func": body,
        "outputs": outputs,
        "wires": wires,
        **extra,
    }


def caps(count: int) -> list[dict[str, Any]]:
    return [{"id": f"cap{p}", "type": "helper"} for p in range(count)]


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[str(i) for i in range(len(SNIPPETS))])
async def test_real_function_bodies_give_node_reds_outputs(snippet: dict[str, Any]) -> None:
    outputs = snippet["outputs"]
    got: list[list[Any]] = []
    flow = [fn("f", snippet["func"], outputs, libs=snippet.get("libs", [])), *caps(outputs)]
    async with FlowHarness(flow) as h:
        for msg in snippet["inputs"]:
            h.receive("f", dict(msg))
        await h.quiet(0.05)
        # the order across ports: by arrival time, as Node-RED's collector saw them
        for port in range(outputs):
            arrivals = h.times.get(f"cap{port}", [])
            for when, msg in zip(arrivals, h.messages.get(f"cap{port}", []), strict=True):
                msg.pop("_msgid", None)
                got.append([when, port, msg])
    got.sort(key=lambda item: item[0])
    assert [[port, msg] for _, port, msg in got] == snippet["expected"]


async def test_buffers_dates_and_undefined_cross_the_boundary_as_node_red_serialises() -> None:
    body = (
        "msg.kind = Buffer.isBuffer(msg.payload); msg.back = Buffer.from([1, 2, 255]);"
        "msg.when = new Date(0); msg.gone = undefined; msg.list = [1, undefined]; return msg;"
    )
    async with FlowHarness([fn("f", body), *caps(1)]) as h:
        h.receive("f", {"payload": b"\x00\xff", "_msgid": "m1"})
        (out,) = await h.wait("cap0")
    assert out == {
        "payload": b"\x00\xff",
        "_msgid": "m1",
        "kind": True,
        "back": b"\x01\x02\xff",
        "when": "1970-01-01T00:00:00.000Z",
        "list": [1, None],
    }


async def test_a_runaway_loop_is_stopped_the_node_goes_red_and_the_runner_goes_on() -> None:
    flow = [fn("f", "while (true) {}", timeout=0.2), fn("g", "return msg;"), *caps(1)]
    async with FlowHarness(flow) as h:
        started = time.monotonic()
        h.receive("f", {"payload": 1})
        print(f"runaway stopped after {time.monotonic() - started:.3f} s (timeout 0.2 s)")
        h.receive("g", {"payload": 2})
        (out,) = await h.wait("cap0")
        assert out["payload"] == 2
        assert h.statuses("f")[-1] == {
            "fill": "red",
            "shape": "dot",
            "text": "Script execution timed out after 200ms",
        }
        errors = [log["msg"] for log in h.logs(20)]
        assert errors == ["Script execution timed out after 200ms"]
        h.receive("f", {"payload": 3})  # the same node still runs (and stops) the next message
        assert len(h.logs(20)) == 2


async def test_timers_promises_and_node_send_after_await() -> None:
    body = (
        "setTimeout(() => node.send({payload: 'timer'}), 30);"
        "await new Promise(resolve => setTimeout(resolve, 10));"
        "msg.payload = 'awaited'; return [null, msg];"
    )
    async with FlowHarness([fn("f", body, 2), *caps(2)]) as h:
        h.receive("f", {"payload": 0})
        (second,) = await h.wait("cap1")
        (first,) = await h.wait("cap0")
    assert second["payload"] == "awaited"
    assert first["payload"] == "timer"


async def test_intervals_are_cleared_when_the_node_stops() -> None:
    body = "setInterval(() => node.send({payload: 'tick'}), 10); return null;"
    harness = FlowHarness([fn("f", body), *caps(1)])
    async with harness as h:
        h.receive("f", {"payload": 0})
        await h.wait("cap0", 2)
    count = len(harness.messages["cap0"])
    await harness.quiet(0.05)
    assert len(harness.messages["cap0"]) == count


async def test_on_start_on_stop_status_warn_and_error_with_msg() -> None:
    flow = [
        fn(
            "f",
            "node.status({fill: 'green', shape: 'dot', text: 'n=' + context.get('n')});"
            "node.warn('seen ' + msg.payload); node.error('bad ' + msg.payload, msg); return null;",
            initialize="context.set('n', 5);",
        ),
        {"id": "c", "type": "catch", "scope": None, "wires": [["cap0"]]},
        *caps(1),
    ]
    async with FlowHarness(flow) as h:
        h.receive("f", {"payload": 7})
        (caught,) = await h.wait("cap0")
        assert caught["error"]["message"] == "bad 7"
        assert h.statuses("f")[-1] == {"fill": "green", "shape": "dot", "text": "n=5"}
        assert [log["msg"] for log in h.logs(30)] == ["seen 7"]


async def test_a_thrown_error_stays_on_the_message_as_node_red_keeps_it() -> None:
    flow = [
        fn("sync", "throw new RangeError('too big: ' + msg.payload)", name="Check"),
        fn("async", "await null; throw new Error('later')"),
        fn("text", "throw 'just text'"),
        fn("done", "node.done(new Error('via done'))"),
        {"id": "c", "type": "catch", "scope": None, "wires": [["cap0"]]},
        {"id": "j", "type": "json", "property": "payload", "wires": [["cap1"]]},
        *caps(2),
    ]
    async with FlowHarness(flow) as h:
        h.receive("sync", {"payload": 9})
        (caught,) = await h.wait("cap0")
        assert caught["error"]["message"] == "RangeError: too big: 9"
        assert caught["error"]["source"] == {
            "id": "sync",
            "type": "function",
            "name": "Check",
            "count": 1,
        }
        assert caught["error"]["stack"].startswith("RangeError: too big: 9\n    at ")
        kept = caught["_error"]  # msg.error was the Error object when the catch node got it
        assert (kept.name, kept.message) == ("RangeError", "too big: 9")
        assert kept == {}  # its JSON is {}, as JSON.stringify gives for an Error
        h.receive("j", {"payload": {"e": kept}})
        assert (await h.wait("cap1"))[0]["payload"] == '{"e":{}}'

        h.receive("async", {"payload": 1})
        caught = (await h.wait("cap0", 2))[1]
        assert caught["error"]["message"] == "Error: later"
        assert caught["_error"].message == "later"

        for node_id in ("text", "done"):  # no Error thrown: nothing kept, no stack
            h.receive(node_id, {"payload": 1})
        text, done = (await h.wait("cap0", 4))[2:]
        assert text["error"]["message"] == "just text"
        assert done["error"]["message"] == "Error: via done"
        assert done["error"]["stack"].startswith("Error: via done\n")  # an Error has one
        assert "_error" not in done  # only a thrown Error stays on the message
        assert "_error" not in text
        assert "stack" not in text["error"]


async def test_linkcall_awaits_a_link_in_flow_and_its_return() -> None:
    body = (
        "const m = await node.linkcall(msg.target, {payload: msg.payload}, {timeout: 300});"
        "msg.payload = [m.payload, m._linkSource === undefined]; return msg;"
    )
    catching = (
        "try { await node.linkcall(msg.target, msg, {timeout: 100}); }"
        "catch (e) { msg.payload = e.message; return msg; }"
    )
    flow = [
        fn("call", body),
        fn("try", catching, wires=[["cap1"]]),
        {"id": "in", "type": "link in", "name": "double", "wires": [["twice"]]},
        fn("twice", "msg.payload *= 2; return msg;", wires=[["ret"]]),
        {"id": "ret", "type": "link out", "mode": "return", "links": [], "wires": []},
        {"id": "dead", "type": "link in", "name": "dead end", "wires": [[]]},
        *caps(2),
    ]
    async with FlowHarness(flow) as h:
        h.receive("call", {"payload": 21, "target": "double"})
        h.receive("call", {"payload": 5, "target": "in"})  # by id too
        got = await h.wait("cap0", 2)
        assert sorted(m["payload"][0] for m in got) == [10, 42]
        assert all(m["payload"][1] for m in got)  # the return stack is gone
        h.receive("try", {"payload": 1, "target": "dead end"})
        h.receive("try", {"payload": 1, "target": "nowhere"})
        h.receive("try", {"payload": 1, "target": ""})
        answers = [m["payload"] for m in await h.wait("cap1", 3)]
        assert sorted(answers) == sorted(
            [
                "timeout",
                "target link in node 'nowhere' not found",
                "Error link call target parameter is not valid, expected a string",
            ]
        )


async def test_errors_syntax_and_refused_modules_are_node_errors() -> None:
    async with FlowHarness([fn("f", "return msg.a.b;"), *caps(1)]) as h:
        h.receive("f", {"payload": 1})
        await h.until(lambda: bool(h.logs(20)))
        assert h.logs(20)[0]["msg"].startswith("TypeError")
    async with FlowHarness([fn("f", "return msg +;"), *caps(1)]) as h:
        assert h.statuses("f")[-1]["fill"] == "red"
        assert "SyntaxError" in h.statuses("f")[-1]["text"]
    libs = [{"var": "fs", "module": "fs"}]
    async with FlowHarness([fn("f", "return msg;", libs=libs), *caps(1)]) as h:
        assert h.statuses("f")[-1]["text"] == "Module fs not allowed"


async def test_env_red_util_and_non_message_results() -> None:
    body = (
        "const copy = RED.util.cloneMessage(msg); RED.util.setMessageProperty(copy, 'a.b', 3);"
        "msg.payload = [env.get('SITE'), RED.util.getMessageProperty(copy, 'msg.a.b')];"
        "return [msg, 'text'];"
    )
    async with FlowHarness([fn("f", body, 2), *caps(2)], env={"SITE": "plant-1"}) as h:
        h.receive("f", {"payload": 0})
        (out,) = await h.wait("cap0")
        await h.until(lambda: bool(h.logs(20)))
    assert out["payload"] == ["plant-1", 3]
    assert h.logs(20)[0]["msg"] == "Function tried to send a message of type string"


async def test_node_done_completes_only_when_called_otherwise_on_return() -> None:
    manual = "setTimeout(() => { node.send(msg); node.done(); }, 20); return null;"
    flow = [
        fn("m", manual),
        fn("a", "return msg;", wires=[[]]),
        {"id": "c", "type": "complete", "scope": ["m", "a"], "wires": [["done"]]},
        {"id": "done", "type": "helper"},
        *caps(1),
    ]
    async with FlowHarness(flow) as h:
        h.receive("m", {"payload": "manual"})
        h.receive("a", {"payload": "auto"})
        (first,) = await h.wait("done", 1)
        assert first["payload"] == "auto"
        assert "cap0" not in h.messages  # the manual one has neither been sent nor completed
        second = (await h.wait("done", 2))[1]
        assert second["payload"] == "manual"
        assert len(h.messages["cap0"]) == 1


async def test_context_stores_callbacks_keys_and_arrays_of_keys() -> None:
    body = (
        "flow.set('a', 1); flow.set(['b', 'c'], [2, {d: Buffer.from('x')}]);"
        "global.set('g', 'G', 'memory');"
        "flow.get(['a', 'b'], (err, a, b) => { msg.cb = [err, a, b]; });"
        "msg.keys = flow.keys().sort(); msg.c = flow.get('c'); msg.g = global.get('g', 'memory');"
        "msg.missing = context.get('nothing') === undefined; return msg;"
    )
    async with FlowHarness([fn("f", body), *caps(1)]) as h:
        h.receive("f", {"payload": 0})
        (out,) = await h.wait("cap0")
        assert h.engine.nodes["f"].flow.get("c") == {"d": b"x"}
    assert out["cb"] == [None, 1, 2]
    assert out["keys"] == ["a", "b", "c"]
    assert out["c"] == {"d": b"x"}
    assert out["g"] == "G"
    assert out["missing"] is True


async def test_long_built_strings_cross_to_python_and_errors_use_v8_words() -> None:
    body = (
        "let text = ''; for (let i = 0; i < 2000; i++) { text += 'ab' + i; }"
        "node.warn('w:' + text.length); node.status({text: 's' + text.slice(0, 5) + 'x'});"
        "msg.payload = text + '!'; msg.topic = 't' + msg.topic;"
        "if (msg.fail) { const nothing = undefined; return nothing.field; } return msg;"
    )
    async with FlowHarness([fn("f", body), *caps(1)]) as h:
        h.receive("f", {"payload": 0, "topic": "x"})
        (out,) = await h.wait("cap0")
        h.receive("f", {"payload": 0, "topic": "x", "fail": True})
        await h.until(lambda: bool(h.logs(20)))
        assert out["payload"].endswith("ab1999!")
        assert out["topic"] == "tx"
        length = sum(2 + len(str(i)) for i in range(2000))
        assert [log["msg"] for log in h.logs(30)] == [f"w:{length}", f"w:{length}"]
        assert h.statuses("f")[-1] == {"text": "sab0abx"}
        assert h.logs(20)[0]["msg"] == (
            "TypeError: Cannot read properties of undefined (reading 'field')"
        )


async def test_each_node_has_its_own_globals() -> None:
    flow = [
        fn(
            "f",
            "counter = (typeof counter === 'number' ? counter : 0) + 1; msg.n = counter;"
            " return msg;",
            wires=[["g"]],
        ),
        fn("g", "msg.seen = typeof counter; return msg;"),
        *caps(1),
    ]
    async with FlowHarness(flow) as h:
        h.receive("f", {"payload": 0})
        h.receive("f", {"payload": 0})
        outs = await h.wait("cap0", 2)
    assert [(o["n"], o["seen"]) for o in outs] == [(1, "undefined"), (2, "undefined")]


async def test_http_in_function_http_response_keeps_the_response_handle(tmp_path: Path) -> None:
    body = (
        "msg.payload = {greeting: 'hello ' + msg.req.query.name, headers: typeof msg.req.headers};"
        "msg.statusCode = 201; msg.headers = {'x-from': 'function'}; return msg;"
    )
    flow = [
        {"id": "in", "type": "http in", "url": "/hi", "method": "get", "wires": [["f"]]},
        fn("f", body, wires=[["resp"]]),
        {"id": "resp", "type": "http response", "statusCode": "", "headers": {}, "wires": []},
    ]
    async with FlowHarness(flow) as h:
        server = Server("127.0.0.1", 0, RunnerPaths(tmp_path), engine=h.engine)
        await server.start()
        try:
            async with (
                aiohttp.ClientSession() as client,
                client.get(f"http://127.0.0.1:{server.port}/hi?name=ada") as answer,
            ):
                assert answer.status == 201
                assert answer.headers["x-from"] == "function"
                assert await answer.json() == {"greeting": "hello ada", "headers": "object"}
        finally:
            await server.stop()


async def test_objects_read_from_context_behave_as_live_objects() -> None:
    setup = "flow.set('state', {count: 0, seen: []}); flow.set('other', {n: 1});"
    body = (
        "const state = flow.get('state'); state.count++; state.seen.push(msg.payload);"
        "const other = flow.get('other'); other.n = 99; flow.set('other', {n: 2});"
        "msg.payload = state.count; return msg;"
    )
    async with FlowHarness([fn("f", body, initialize=setup), *caps(1)]) as h:
        h.receive("f", {"payload": "a"})
        h.receive("f", {"payload": "b"})
        outs = await h.wait("cap0", 2)
        flow_context = h.engine.nodes["f"].flow
        assert flow_context.get("state") == {"count": 2, "seen": ["a", "b"]}
        assert flow_context.get("other") == {"n": 2}  # set after the read wins
    assert [o["payload"] for o in outs] == [1, 2]
