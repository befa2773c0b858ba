"""The http response node: status codes, headers, cookies, body types, misuse warnings."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge_runner.nodes.http_response import Config, cookie_header
from edge_runner.testing import FlowHarness
from tests.edge_runner.nodes.test_http_in import serving


def flow(status: str = "", headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """http in GET /r -> helper "set" (the test edits what it recorded and passes it to the
    http response node "resp" itself)."""
    return [
        {"id": "in", "type": "http in", "url": "/r", "method": "get", "wires": [["set"]]},
        {"id": "set", "type": "helper", "wires": []},
        {
            "id": "resp",
            "type": "http response",
            "statusCode": status,
            "headers": headers or {},
            "wires": [],
        },
    ]


async def answer(
    tmp_path: Path, node_status: str = "", node_headers: dict[str, str] | None = None, **props: Any
) -> tuple[int, dict[str, str], bytes, list[str]]:
    """GET /r; the recorded message gets ``props`` and goes into the http response node."""
    async with serving(flow(node_status, node_headers), tmp_path) as (h, client, base):
        pending = asyncio.ensure_future(client.get(f"{base}/r"))
        (msg,) = await h.wait("set")
        for key, value in props.items():
            if value is _DELETE:
                msg.pop(key, None)
            else:
                msg[key] = value
        h.receive("resp", msg)
        r = await pending
        body = await r.read()
        return r.status, dict(r.headers), body, r.headers.getall("Set-Cookie", [])


_DELETE = object()


async def test_string_payload_defaults_to_200_html(tmp_path: Path) -> None:
    status, headers, body, _ = await answer(tmp_path, payload="hello")
    assert (status, body) == (200, b"hello")
    assert headers["Content-Type"] == "text/html; charset=utf-8"


async def test_msg_status_code_used_when_node_has_none(tmp_path: Path) -> None:
    status, _, body, _ = await answer(tmp_path, payload="gone", statusCode=410)
    assert (status, body) == (410, b"gone")


async def test_node_status_code_wins_over_msg(tmp_path: Path) -> None:
    status, _, _, _ = await answer(tmp_path, node_status="201", payload="x", statusCode=410)
    assert status == 201


async def test_headers_node_wins_and_msg_headers_are_added(tmp_path: Path) -> None:
    _, headers, _, _ = await answer(
        tmp_path,
        node_headers={"X-Node": "n", "Content-Type": "text/plain"},
        payload="x",
        headers={"x-node": "from-msg", "X-Msg": "m"},
    )
    assert headers["X-Node"] == "n"
    assert headers["X-Msg"] == "m"
    assert headers["Content-Type"] == "text/plain"


async def test_body_types(tmp_path: Path) -> None:
    _, headers, body, _ = await answer(tmp_path, payload={"a": [1, 2.5], "n": float("nan")})
    assert body == b'{"a":[1,2.5],"n":null}'
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    _, headers, body, _ = await answer(tmp_path, payload=b"\x00\x01")
    assert (body, headers["Content-Type"]) == (b"\x00\x01", "application/octet-stream")
    _, _, body, _ = await answer(tmp_path, payload=5.0)
    assert body == b"5"
    _, _, body, _ = await answer(tmp_path, payload=None)
    assert body == b"null"
    _, _, body, _ = await answer(tmp_path, payload=_DELETE)
    assert body == b""


async def test_cookies_set_and_clear(tmp_path: Path) -> None:
    _, _, _, cookies = await answer(
        tmp_path,
        payload="x",
        cookies={"a": "1", "b": {"value": "two", "maxAge": 60000, "httpOnly": True}, "c": None},
    )
    assert "a=1; Path=/" in cookies
    assert "b=two; Path=/; Max-Age=60; HttpOnly" in cookies
    assert any(c.startswith("c=; Path=/; Expires=Thu, 01 Jan 1970") for c in cookies)


async def test_bad_msg_status_code_is_an_error_and_the_flow_can_retry(tmp_path: Path) -> None:
    async with serving(flow(), tmp_path) as (h, client, base):
        pending = asyncio.ensure_future(client.get(f"{base}/r"))
        (msg,) = await h.wait("set")
        h.receive("resp", {**msg, "statusCode": "teapot", "payload": "x"})
        assert any("statusCode" in e["msg"] for e in h.logs(20))
        h.receive("resp", {**msg, "statusCode": 418, "payload": "x"})
        r = await pending
        assert r.status == 418


async def test_message_without_res_or_answered_twice_warns() -> None:
    async with FlowHarness(
        [{"id": "resp", "type": "http response", "statusCode": "", "headers": {}}]
    ) as h:
        h.receive("resp", {"payload": "x"})
        assert "No response object" in h.logs(30)[0]["msg"]


async def test_second_answer_is_dropped_with_a_warning(tmp_path: Path) -> None:
    async with serving(flow(), tmp_path) as (h, client, base):
        pending = asyncio.ensure_future(client.get(f"{base}/r"))
        (msg,) = await h.wait("set")
        h.receive("resp", {**msg, "payload": "first"})
        h.receive("resp", {**msg, "payload": "second"})
        r = await pending
        assert await r.text() == "first"
        assert "already answered" in h.logs(30)[0]["msg"]


def test_cookie_header_rejects_bad_max_age() -> None:
    from edge_runner.contract import NodeFailed

    with pytest.raises(NodeFailed):
        cookie_header("a", {"value": "1", "maxAge": "soon"})


def test_schema() -> None:
    assert Config.model_validate({"statusCode": 404}).statusCode == "404"
    assert Config.model_validate({"statusCode": None, "headers": ""}).headers == {}
    with pytest.raises(ValidationError):
        Config.model_validate({"statusCode": "abc"})
    assert Config.model_validate({"other": 1}) == Config()  # unknown fields are ignored
