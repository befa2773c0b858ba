"""The http in node, served by the real aiohttp server on 127.0.0.1: routes, params, bodies,
msg.req/msg.res, answering the right request, errors."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

import edge_runner.runtime.http_routes as http_routes
from edge_runner.nodes.http_in import Config
from edge_runner.runtime.http_routes import ResponseHandle, compile_path, parse_query
from edge_runner.runtime.paths import RunnerPaths
from edge_runner.runtime.server import Server
from edge_runner.testing import FlowHarness


@asynccontextmanager
async def serving(
    flow: list[dict[str, Any]], userdir: Path
) -> AsyncIterator[tuple[FlowHarness, aiohttp.ClientSession, str]]:
    """Run ``flow`` in a harness and serve its engine on a free loopback port."""
    async with FlowHarness(flow) as h:
        server = Server("127.0.0.1", 0, RunnerPaths(userdir), engine=h.engine)
        await server.start()
        try:
            async with aiohttp.ClientSession() as client:
                yield h, client, f"http://127.0.0.1:{server.port}"
        finally:
            await server.stop()


def endpoint(url: str, method: str = "get", **extra: Any) -> list[dict[str, Any]]:
    """http in -> helper "got" -> http response."""
    return [
        {
            "id": "in",
            "type": "http in",
            "url": url,
            "method": method,
            "upload": False,
            "swaggerDoc": "",
            "wires": [["got"]],
            **extra,
        },
        {"id": "got", "type": "helper", "wires": [["resp"]]},
        {"id": "resp", "type": "http response", "statusCode": "", "headers": {}, "wires": []},
    ]


async def test_get_query_params_and_request_fields(tmp_path: Path) -> None:
    async with serving(endpoint("/users/:id"), tmp_path) as (h, client, base):
        async with client.get(
            f"{base}/users/42?x=1&tag=a&tag=b", headers={"X-Thing": "v", "Cookie": "sid=abc"}
        ) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "application/json; charset=utf-8"
            assert await r.json() == {"x": "1", "tag": ["a", "b"]}
        (msg,) = h.messages["got"]
    req = msg["req"]
    assert msg["payload"] == {"x": "1", "tag": ["a", "b"]}
    assert req["params"] == {"id": "42"}
    assert req["method"] == "GET"
    assert req["path"] == "/users/42"
    assert req["url"] == "/users/42?x=1&tag=a&tag=b"
    assert req["headers"]["x-thing"] == "v"
    assert req["cookies"] == {"sid": "abc"}
    assert isinstance(msg["res"], ResponseHandle)
    assert msg["_msgid"] == msg["res"].msgid


async def test_post_bodies_by_content_type(tmp_path: Path) -> None:
    async with serving(endpoint("/data", "post"), tmp_path) as (h, client, base):
        async with client.post(f"{base}/data", json={"a": [1, 2]}) as r:
            assert await r.json() == {"a": [1, 2]}
        async with client.post(f"{base}/data", data={"k": "v", "n": "1"}) as r:
            assert await r.json() == {"k": "v", "n": "1"}
        async with client.post(
            f"{base}/data", data="plain text", headers={"Content-Type": "text/plain"}
        ) as r:
            assert await r.text() == "plain text"
            assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        async with client.post(
            f"{base}/data", data=b"\x00\xff", headers={"Content-Type": "application/octet-stream"}
        ) as r:
            assert await r.read() == b"\x00\xff"
            assert r.headers["Content-Type"] == "application/octet-stream"
        async with client.post(
            f"{base}/data", data=b"", headers={"Content-Type": "application/json"}
        ) as r:
            assert await r.json() == {}
    payloads = [m["payload"] for m in h.messages["got"]]
    assert payloads == [{"a": [1, 2]}, {"k": "v", "n": "1"}, "plain text", b"\x00\xff", {}]


async def test_bad_json_is_400_and_starts_no_flow(tmp_path: Path) -> None:
    async with (
        serving(endpoint("/data", "post"), tmp_path) as (h, client, base),
        client.post(
            f"{base}/data", data="{nope", headers={"Content-Type": "application/json"}
        ) as r,
    ):
        assert r.status == 400
        assert "not valid JSON" in await r.text()
    assert "got" not in h.messages


async def test_unknown_route_wrong_method_and_removed_route_are_404(tmp_path: Path) -> None:
    async with serving(endpoint("/here"), tmp_path) as (h, client, base):
        async with client.get(f"{base}/elsewhere") as r:
            assert r.status == 404
        async with client.post(f"{base}/here") as r:
            assert r.status == 404
        async with client.get(f"{base}/HERE/") as r:  # Express: case-insensitive, slash ok
            assert r.status == 200
        await h.engine.deploy([{"id": "t1", "type": "tab"}])
        async with client.get(f"{base}/here") as r:
            assert r.status == 404


async def test_each_response_answers_its_own_request(tmp_path: Path) -> None:
    flow: list[dict[str, Any]] = [
        {"id": "in", "type": "http in", "url": "/slow/:n", "method": "get", "wires": [["got"]]},
        {"id": "got", "type": "helper", "wires": []},
        {"id": "resp", "type": "http response", "statusCode": "", "headers": {}},
    ]
    async with serving(flow, tmp_path) as (h, client, base):
        first = asyncio.ensure_future(client.get(f"{base}/slow/1"))
        second = asyncio.ensure_future(client.get(f"{base}/slow/2"))
        msgs = await h.wait("got", 2)
        for msg in reversed(msgs):  # answer in the opposite order
            msg["payload"] = "answer " + msg["req"]["params"]["n"]
            h.receive("resp", msg)
        r1, r2 = await first, await second
        assert await r1.text() == "answer 1"
        assert await r2.text() == "answer 2"


async def test_unanswered_request_gets_504(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_routes, "RESPONSE_TIMEOUT_S", 0.2)
    flow = [{"id": "in", "type": "http in", "url": "/void", "method": "get", "wires": [[]]}]
    async with serving(flow, tmp_path) as (_, client, base), client.get(f"{base}/void") as r:
        assert r.status == 504


async def test_upload_gives_fields_and_files(tmp_path: Path) -> None:
    async with serving(endpoint("/up", "post", upload=True), tmp_path) as (h, client, base):
        form = aiohttp.FormData()
        form.add_field("title", "report")
        form.add_field(
            "file", b"\x01\x02", filename="a.bin", content_type="application/octet-stream"
        )
        async with client.post(f"{base}/up", data=form) as r:
            assert r.status == 200
        (msg,) = h.messages["got"]
    assert msg["payload"] == {"title": "report"}
    (file,) = msg["req"]["files"]
    assert (file["fieldname"], file["originalname"], file["buffer"], file["size"]) == (
        "file",
        "a.bin",
        b"\x01\x02",
        2,
    )


async def test_too_large_body_is_413(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_routes, "MAX_BODY", 10)
    async with (
        serving(endpoint("/data", "post"), tmp_path) as (h, client, base),
        client.post(f"{base}/data", data="x" * 11, headers={"Content-Type": "text/plain"}) as r,
    ):
        assert r.status == 413
    assert "got" not in h.messages


async def test_missing_url_goes_red_and_serves_nothing(tmp_path: Path) -> None:
    async with serving(endpoint(""), tmp_path) as (h, client, base):
        async with client.get(f"{base}/") as r:
            assert r.status == 404
        assert h.statuses("in")[0]["fill"] == "red"


def test_path_patterns_follow_express() -> None:
    regex, names = compile_path("/a/:id/:opt?")
    assert names == ["id", "opt"]
    found = regex.match("/a/1")
    assert found is not None
    assert found.groups() == ("1", None)
    assert regex.match("/a/1/2/3") is None
    regex, _ = compile_path("/files/*")
    found = regex.match("/files/x/y.txt")
    assert found is not None
    assert found.group(1) == "x/y.txt"


def test_query_parsing() -> None:
    assert parse_query([("a", "1"), ("a", "2"), ("b[]", "x"), ("c", "")]) == {
        "a": ["1", "2"],
        "b": ["x"],
        "c": "",
    }


def test_schema() -> None:
    assert Config.model_validate({"url": "/x", "method": "POST"}).method == "post"
    with pytest.raises(ValidationError):
        Config.model_validate({"url": "/x", "method": "trace"})
    assert Config.model_validate({"url": "/x", "nope": 1}).url == "/x"  # unknown: ignored
