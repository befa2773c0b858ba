"""``send``: Node-RED clones every delivery after the first one of the whole call.

The copies are taken before any target runs, so a target that changes its message in place
(targets run synchronously here) never changes what the other targets receive.
"""

from __future__ import annotations

from typing import Any

import pytest

from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

# Records the identity and content of each message it receives, then changes it in place.
MUTATE = (
    "seen = global_.get('seen') or []\n"
    "seen.append((node.id, id(msg), msg['payload']['v']))\n"
    "global_.set('seen', seen)\n"
    "msg['payload']['v'] = 'changed by ' + node.id\n"
    "return None"
)


def fn(node_id: str, body: str, wires: list[list[str]], outputs: int = 1) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "python-function",
        "func": body,
        "outputs": outputs,
        "wires": wires,
    }


def seen(h: FlowHarness) -> list[tuple[str, int, Any]]:
    return list(h.engine.global_context.get("seen") or [])


async def test_the_same_object_on_two_ports_reaches_the_second_as_a_copy() -> None:
    flow = [
        fn("src", "m = {'payload': {'v': 1}}\nreturn [m, m]", [["a"], ["b"]], outputs=2),
        fn("a", MUTATE, []),
        fn("b", MUTATE, []),
    ]
    async with FlowHarness(flow) as h:
        h.receive("src", {"payload": 0})
        await h.until(lambda: len(seen(h)) == 2)
        (a_node, a_id, a_value), (b_node, b_id, b_value) = seen(h)
        assert (a_node, b_node) == ("a", "b")
        assert a_id != b_id
        assert (a_value, b_value) == (1, 1)  # b did not see a's in-place change


async def test_fan_out_copies_are_taken_before_the_first_target_runs() -> None:
    flow = [
        {"id": "src", "type": "helper", "wires": [["a", "b", "c"]]},
        fn("a", MUTATE, []),
        fn("b", MUTATE, []),
        fn("c", MUTATE, []),
    ]
    async with FlowHarness(flow) as h:
        h.receive("src", {"payload": {"v": 1}})
        await h.until(lambda: len(seen(h)) == 3)
        assert [(node, value) for node, _, value in seen(h)] == [("a", 1), ("b", 1), ("c", 1)]
        assert len({ident for _, ident, _ in seen(h)}) == 3


async def test_one_copy_per_delivery_across_ports_wires_and_lists_in_node_red_order() -> None:
    body = "return [[{'payload': {'v': 'm1'}}, {'payload': {'v': 'm2'}}], {'payload': {'v': 'm3'}}]"
    flow = [
        fn("src", body, [["a", "b"], ["c"]], outputs=2),
        fn("a", MUTATE, []),
        fn("b", MUTATE, []),
        fn("c", MUTATE, []),
    ]
    async with FlowHarness(flow) as h:
        h.receive("src", {"payload": 0, "_msgid": "m-id"})
        await h.until(lambda: len(seen(h)) == 5)
        # per port: each wire in turn receives every message of the port's list
        assert [(node, value) for node, _, value in seen(h)] == [
            ("a", "m1"),
            ("a", "m2"),
            ("b", "m1"),
            ("b", "m2"),
            ("c", "m3"),
        ]
        assert len({ident for _, ident, _ in seen(h)}) == 5


async def test_clone_false_delivers_the_first_message_itself_and_copies_the_rest() -> None:
    body = (
        "m = {'payload': {'v': 1}}\n"
        "global_.set('sent', id(m))\n"
        "node.send([m, m], clone=False)\n"
        "return None"
    )
    flow = [
        fn("src", body, [["a"], ["b"]], outputs=2),
        fn("a", MUTATE, []),
        fn("b", MUTATE, []),
    ]
    async with FlowHarness(flow) as h:
        h.receive("src", {"payload": 0})
        await h.until(lambda: len(seen(h)) == 2)
        sent = h.engine.global_context.get("sent")
        (_, a_id, _), (_, b_id, b_value) = seen(h)
        assert a_id == sent
        assert b_id != sent
        assert b_value == 1


async def test_clone_true_copies_every_delivery() -> None:
    body = "m = {'payload': {'v': 1}}\nglobal_.set('sent', id(m))\nnode.send(m)\nreturn None"
    flow = [fn("src", body, [["a"]]), fn("a", MUTATE, [])]
    async with FlowHarness(flow) as h:
        h.receive("src", {"payload": 0})
        await h.until(lambda: len(seen(h)) == 1)
        assert seen(h)[0][1] != h.engine.global_context.get("sent")


async def test_messages_without_an_id_share_the_first_messages_id() -> None:
    flow = [
        {"id": "src", "type": "helper", "wires": [["a"], ["b"]]},
        {"id": "a", "type": "helper"},
        {"id": "b", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        h.engine.nodes["src"].send([{"payload": 1}, [{"payload": 2}, {"payload": 3}]])
        (a,) = await h.wait("a")
        b = await h.wait("b", 2)
        assert a["_msgid"]
        assert {m["_msgid"] for m in b} == {a["_msgid"]}
        h.engine.nodes["src"].send([{"payload": 4}, {"payload": 5, "_msgid": "given"}])
        await h.wait("b", 3)
        assert h.messages["a"][1]["_msgid"] == "given"
        assert h.messages["b"][2]["_msgid"] == "given"
