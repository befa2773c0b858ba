"""The csv node: parsing with templates/headers/skip/numbers/empties, parts, rendering."""

import copy
from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def flow(**config: Any) -> list[dict[str, Any]]:
    node = {
        "id": "n1",
        "type": "csv",
        "temp": "",
        "sep": ",",
        "hdrin": False,
        "hdrout": "none",
        "multi": "one",
        "ret": "\\n",
        "skip": "0",
        "strings": True,
        "include_empty_strings": False,
        "include_null_values": False,
        "name": "",
        "wires": [["out"]],
    }
    node.update(config)
    return [
        node,
        {"id": "out", "type": "helper"},
        {"id": "c1", "type": "catch", "scope": None, "uncaught": False, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]


def core(**config: Any) -> list[dict[str, Any]]:
    return flow(**config)[:2]


async def run(config: dict[str, Any], *msgs: dict[str, Any]) -> list[dict[str, Any]]:
    async with FlowHarness(core(**config)) as h:
        for msg in msgs:
            h.receive("n1", copy.deepcopy(msg))
        await h.quiet(0.02)
        return h.messages.get("out", [])


async def test_line_to_object_using_the_column_template() -> None:
    (out,) = await run({"temp": "a,b,c,d"}, {"payload": "1,2,3,4\n"})
    assert out["payload"] == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert out["columns"] == "a,b,c,d"
    assert out["parts"] == {"id": out["_msgid"], "index": 0, "count": 1}


async def test_first_line_as_header_with_quoted_names() -> None:
    (out,) = await run({"hdrin": True}, {"payload": 'a,b b,"c,c","d, d"\n1,2,3,4\n'})
    assert out["payload"] == {"a": 1, "b b": 2, "c,c": 3, "d, d": 4}
    assert out["columns"] == 'a,b b,"c,c","d, d"'


async def test_rfc4180_quoting_multiline_cells_and_crlf() -> None:
    text = 'name,note\r\n"Smith, J","said ""hi""\r\nthen left"\r\nDoe,plain\r\n'
    out = await run({"hdrin": True, "multi": "mult"}, {"payload": text})
    assert out[0]["payload"] == [
        {"name": "Smith, J", "note": 'said "hi"\r\nthen left'},
        {"name": "Doe", "note": "plain"},
    ]


async def test_without_template_columns_are_numbered() -> None:
    out = await run({"multi": "mult"}, {"payload": "x,y\n1,2,3\n"})
    assert out[0]["payload"] == [{"col1": "x", "col2": "y"}, {"col1": 1, "col2": 2, "col3": 3}]
    assert out[0]["columns"] == "col1,col2,col3"


async def test_numbers_only_when_asked_and_ids_stay_text() -> None:
    text = "1.5,-2,007,+3,1e3,0x1A,12abc\n"
    temp = "a,b,c,d,e,f,g"
    (parsed,) = await run({"temp": temp}, {"payload": text})
    assert parsed["payload"] == {
        "a": 1.5,
        "b": -2,
        "c": "007",
        "d": "+3",
        "e": 1000.0,
        "f": 26,
        "g": "12abc",
    }
    (raw,) = await run({"temp": temp, "strings": False}, {"payload": text})
    assert raw["payload"]["a"] == "1.5"


async def test_empty_and_null_cells() -> None:
    text = 'a,,"",d\n'
    (plain,) = await run({"temp": "w,x,y,z"}, {"payload": text})
    assert plain["payload"] == {"w": "a", "z": "d"}
    (both,) = await run(
        {"temp": "w,x,y,z", "include_empty_strings": True, "include_null_values": True},
        {"payload": text},
    )
    assert both["payload"] == {"w": "a", "x": None, "y": "", "z": "d"}


async def test_skip_lines_separator_and_skipped_template_columns() -> None:
    text = "# exported\n# by plc\n1;2;3\n4;5;6\n"
    out = await run({"temp": "a,,c", "sep": ";", "skip": "2", "multi": "mult"}, {"payload": text})
    assert out[0]["payload"] == [{"a": 1, "c": 3}, {"a": 4, "c": 6}]
    assert out[0]["columns"] == "a,c"


async def test_one_message_per_row_with_parts_for_join() -> None:
    out = await run({"temp": "v"}, {"payload": "1\n2\n3"})
    assert [m["payload"] for m in out] == [{"v": 1}, {"v": 2}, {"v": 3}]
    assert [m["parts"]["index"] for m in out] == [0, 1, 2]
    assert {m["parts"]["count"] for m in out} == {3}
    assert len({m["parts"]["id"] for m in out}) == 1


async def test_line_by_line_stream_with_header_and_mult() -> None:
    lines = ["t,v", "a,1", "b,2"]
    msgs = [
        {"payload": line, "parts": {"id": "p", "index": i, "count": 3}}
        for i, line in enumerate(lines)
    ]
    out = await run({"hdrin": True, "multi": "mult"}, *msgs)
    assert len(out) == 1
    assert out[0]["payload"] == [{"t": "a", "v": 1}, {"t": "b", "v": 2}]
    assert "parts" not in out[0]
    out = await run({"hdrin": True}, *msgs)
    assert [m["payload"] for m in out] == [{"t": "a", "v": 1}, {"t": "b", "v": 2}]
    assert [m["parts"]["index"] for m in out] == [0, 1]
    assert out[-1]["parts"]["count"] == 2
    assert out[-1]["complete"] is True


async def test_objects_to_csv_with_template_and_quoting() -> None:
    payload = [
        {"a": 1, "b": "x,y", "c": 'say "hi"', "d": None},
        {"a": 2.0, "b": True, "c": "line\nbreak", "d": {"k": 1}},
    ]
    (out,) = await run({"temp": "a,b,c,d", "ret": "\\r\\n"}, {"payload": payload})
    assert out["payload"] == ('1,"x,y","say ""hi""",\r\n2,true,"line\nbreak","{""k"":1}"\r\n')
    assert out["columns"] == "a,b,c,d"


async def test_arrays_and_header_all_or_once_until_reset() -> None:
    msgs: list[dict[str, Any]] = [
        {"payload": [[1, 2], [3, 4]]},
        {"payload": [5, 6]},
        {"reset": True},
        {"payload": [7, 8]},
    ]
    out = await run({"temp": "x,y", "hdrout": "once"}, *msgs)
    assert [m["payload"] for m in out] == ["x,y\n1,2\n3,4\n", "5,6\n", "x,y\n7,8\n"]
    out = await run({"temp": "x,y", "hdrout": "all"}, *msgs)
    assert [m["payload"] for m in out][1] == "x,y\n5,6\n"


async def test_object_without_template_uses_msg_columns_or_keys() -> None:
    (out,) = await run({"hdrout": "all"}, {"payload": {"b": 2, "a": 1}, "columns": "a,b"})
    assert out["payload"] == "a,b\n1,2\n"
    (out,) = await run({"hdrout": "all"}, {"payload": [{"b": 2, "a": 1}, {"a": 3}]})
    assert out["payload"] == "b,a\n2,1\n,3\n"


async def test_round_trip_through_two_nodes() -> None:
    rows = [{"id": "A1", "temp": 21.5, "ok": "yes, really"}, {"id": "B2", "temp": -3}]
    async with FlowHarness(
        [
            {
                "id": "w",
                "type": "csv",
                "temp": "id,temp,ok",
                "hdrout": "all",
                "ret": "\\n",
                "wires": [["r"]],
            },
            {"id": "r", "type": "csv", "hdrin": True, "multi": "mult", "wires": [["out"]]},
            {"id": "out", "type": "helper"},
        ]
    ) as h:
        h.receive("w", {"payload": rows})
        (out,) = await h.wait("out")
    assert out["payload"] == rows


async def test_unclosed_quote_is_a_catchable_error() -> None:
    async with FlowHarness(flow(temp="a,b")) as h:
        h.receive("n1", {"payload": '1,"2\n3,4\n'})
        (err,) = await h.wait("errs")
        assert "out" not in h.messages
    assert err["error"]["message"] == "Malformed CSV: quote opened on line 1 is never closed"


async def test_message_without_payload_passes_and_numbers_warn() -> None:
    async with FlowHarness(core()) as h:
        h.receive("n1", {"topic": "t"})
        h.receive("n1", {"payload": 5})
        (out,) = await h.wait("out")
        await h.quiet(0.02)
        assert out["topic"] == "t"
        assert len(h.messages["out"]) == 1
        assert any("CSV strings" in e["msg"] for e in h.logs(30))


@pytest.mark.parametrize(
    "bad", [{"sep": ",,"}, {"multi": "many"}, {"skip": "-1"}, {"ret": "x"}, {"hdrout": "sometimes"}]
)
async def test_bad_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(DeployError):
        async with FlowHarness(core(**bad)):
            pass


async def test_legacy_config_fields_are_accepted() -> None:
    (out,) = await run(
        {"temp": "a", "hdrout": True, "hdrin": "", "quo": '"', "spec": ""}, {"payload": [{"a": 1}]}
    )
    assert out["payload"] == "a\n1\n"
