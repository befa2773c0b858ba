"""The http request node against a real aiohttp server on 127.0.0.1 started by the test."""

import asyncio
import base64
import hashlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from edge_runner.nodes.http_request import render_url
from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

REALM = "plc"
NONCE = "abc123"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324  # RFC 2617 digest is MD5


async def echo(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": (await request.read()).decode("utf-8", "replace"),
        }
    )


async def basic(request: web.Request) -> web.Response:
    expected = "Basic " + base64.b64encode(b"olivia:s3cret").decode()
    if request.headers.get("Authorization") != expected:
        return web.Response(status=401, text="no")
    return web.Response(text="basic ok")


async def digest(request: web.Request) -> web.Response:
    header = request.headers.get("Authorization", "")
    if header.startswith("Digest "):
        fields = dict(part.strip().split("=", 1) for part in header[7:].split(","))
        fields = {k: v.strip('"') for k, v in fields.items()}
        ha1 = _md5(f"olivia:{REALM}:s3cret")
        ha2 = _md5(f"{request.method}:{fields['uri']}")
        expected = _md5(f"{ha1}:{NONCE}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
        if fields.get("response") == expected:
            return web.Response(text="digest ok")
    return web.Response(
        status=401,
        headers={"WWW-Authenticate": f'Digest realm="{REALM}", nonce="{NONCE}", qop="auth"'},
    )


async def bearer(request: web.Request) -> web.Response:
    ok = request.headers.get("Authorization") == "Bearer tok-1"
    return web.Response(status=200 if ok else 401, text="bearer ok" if ok else "no")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.Response(text="late")


async def cookies(request: web.Request) -> web.Response:
    response = web.Response(text=request.headers.get("Cookie", ""))
    response.set_cookie("session", "s1")
    return response


def fixed(**response: Any) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(**response)

    return handler


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/text")


async def item(request: web.Request) -> web.Response:
    return web.Response(text=request.match_info["id"])


async def json_doc(request: web.Request) -> web.Response:
    return web.json_response({"a": 1})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/text", fixed(text="héllo", content_type="text/plain"))
    app.router.add_get("/json", json_doc)
    app.router.add_get("/bin", fixed(body=b"\x00\x01\xff"))
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/missing", fixed(status=404, text="nope"))
    app.router.add_get("/basic", basic)
    app.router.add_get("/digest", digest)
    app.router.add_get("/bearer", bearer)
    app.router.add_get("/slow", slow)
    app.router.add_get("/cookies", cookies)
    app.router.add_get("/items/{id}", item)
    return app


@pytest.fixture
async def server() -> AsyncIterator[str]:
    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def flow(**config: Any) -> list[dict[str, Any]]:
    node = {
        "id": "rq",
        "type": "http request",
        "name": "",
        "method": "GET",
        "ret": "txt",
        "paytoqs": "ignore",
        "url": "",
        "tls": "",
        "persist": False,
        "proxy": "",
        "insecureHTTPParser": False,
        "authType": "",
        "senderr": False,
        "headers": [],
        "wires": [["out"]],
    }
    node.update(config)
    return [
        node,
        {"id": "out", "type": "helper"},
        {"id": "c1", "type": "catch", "scope": None, "uncaught": False, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]


async def request(msg: dict[str, Any], **config: Any) -> dict[str, Any]:
    async with FlowHarness(flow(**config)) as h:
        h.receive("rq", msg)
        (out,) = await h.wait("out", timeout=5)
    return out


async def test_get_text_with_status_headers_and_response_url(server: str) -> None:
    out = await request({"url": f"{server}/text"})
    assert out["payload"] == "héllo"
    assert out["statusCode"] == 200
    assert out["headers"]["content-type"] == "text/plain; charset=utf-8"
    assert out["responseUrl"] == f"{server}/text"


async def test_return_types_bin_and_obj(server: str) -> None:
    assert (await request({}, url=f"{server}/bin", ret="bin"))["payload"] == b"\x00\x01\xff"
    assert (await request({}, url=f"{server}/json", ret="obj"))["payload"] == {"a": 1}
    async with FlowHarness(flow(url=f"{server}/text", ret="obj")) as h:
        h.receive("rq", {})
        (out,) = await h.wait("out", timeout=5)
        assert out["payload"] == "héllo"
        assert any("JSON parse error" in e["msg"] for e in h.logs(30))


async def test_post_object_as_json_with_configured_and_msg_headers(server: str) -> None:
    headers = [
        {"keyType": "other", "keyValue": "X-Plant", "valueType": "other", "valueValue": "north"},
        {"keyType": "Accept", "keyValue": "", "valueType": "msg", "valueValue": "accept"},
    ]
    out = await request(
        {"payload": {"t": 21.5}, "headers": {"X-Line": "3"}, "accept": "application/json"},
        url=f"{server}/echo",
        method="POST",
        ret="obj",
        headers=headers,
    )
    got = out["payload"]
    assert got["method"] == "POST"
    assert json.loads(got["body"]) == {"t": 21.5}
    assert got["headers"]["content-type"] == "application/json"
    assert got["headers"]["x-plant"] == "north"
    assert got["headers"]["x-line"] == "3"
    assert got["headers"]["accept"] == "application/json"


async def test_form_encoding_and_method_from_message(server: str) -> None:
    out = await request(
        {
            "method": "put",
            "payload": {"a": "1 2", "b": "x"},
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        url=f"{server}/echo",
        method="use",
        ret="obj",
    )
    assert out["payload"]["method"] == "PUT"
    assert out["payload"]["body"] == "a=1+2&b=x"


async def test_payload_to_query_string(server: str) -> None:
    out = await request(
        {"payload": {"q": "temp", "n": 5}}, url=f"{server}/echo?x=1", paytoqs="query", ret="obj"
    )
    assert out["payload"]["query"] == {"x": "1", "q": "temp", "n": "5"}
    assert out["payload"]["body"] == ""


async def test_url_template_and_msg_url(server: str) -> None:
    out = await request(
        {"item": "a b", "host": server.removeprefix("http://")},
        url="http://{{{host}}}/items/{{item}}",
    )
    assert out["payload"] == "a b"
    # Like Node-RED (mustache.js), double braces HTML-escape, triple braces do not.
    assert render_url("/{{p}}/{{{p}}}", {"p": "a/b&c"}) == "/a&#x2F;b&amp;c/a/b&c"
    out = await request({"url": server.removeprefix("http://") + "/text"})
    assert out["payload"] == "héllo"


async def test_redirects_followed_or_returned(server: str) -> None:
    out = await request({}, url=f"{server}/redirect")
    assert out["payload"] == "héllo"
    assert out["responseUrl"] == f"{server}/text"
    assert out["redirectList"] == [{"location": "/text", "cookies": {}}]
    out = await request({"followRedirects": False}, url=f"{server}/redirect")
    assert out["statusCode"] == 302


async def test_basic_digest_and_bearer_auth_from_credentials(server: str) -> None:
    creds = {"user": "olivia", "password": "s3cret"}
    out = await request({}, url=f"{server}/basic", authType="basic", credentials=creds)
    assert out["payload"] == "basic ok"
    out = await request({}, url=f"{server}/digest", authType="digest", credentials=creds)
    assert out["payload"] == "digest ok"
    out = await request(
        {}, url=f"{server}/bearer", authType="bearer", credentials={"password": "tok-1"}
    )
    assert out["payload"] == "bearer ok"
    out = await request(
        {},
        url=f"{server}/basic",
        authType="basic",
        credentials={"user": "olivia", "password": "wrong"},
    )
    assert out["statusCode"] == 401


async def test_cookies_both_ways_and_response_headers_not_resent(server: str) -> None:
    async with FlowHarness(
        [
            {"id": "a", "type": "http request", "url": f"{server}/cookies", "wires": [["b"]]},
            {
                "id": "b",
                "type": "http request",
                "url": f"{server}/echo",
                "ret": "obj",
                "wires": [["out"]],
            },
            {"id": "out", "type": "helper"},
        ]
    ) as h:
        h.receive("a", {"cookies": {"k": "v"}})
        (out,) = await h.wait("out", timeout=5)
    assert "x-node-red-request-node" not in out["payload"]["headers"]
    assert "set-cookie" not in out["payload"]["headers"]
    assert out["payload"]["headers"]["cookie"] == "k=v"


async def test_non_2xx_is_sent_unless_senderr(server: str) -> None:
    out = await request({}, url=f"{server}/missing")
    assert out["statusCode"] == 404
    assert out["payload"] == "nope"
    async with FlowHarness(flow(url=f"{server}/missing", senderr=True)) as h:
        h.receive("rq", {"topic": "t"})
        (err,) = await h.wait("errs", timeout=5)
        assert "out" not in h.messages
    assert err["error"]["message"] == "HTTP 404 Not Found"
    assert err["statusCode"] == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_then_recovered_status_transitions(server: str) -> None:
    port = _free_port()
    async with FlowHarness(flow()) as h:
        h.receive("rq", {"url": f"http://127.0.0.1:{port}/x"})
        (err,) = await h.wait("errs", timeout=5)
        (sent,) = await h.wait("out", timeout=5)
        text = f"RequestError: connect ECONNREFUSED 127.0.0.1:{port}"
        assert err["error"]["message"] == text  # Node-RED's (got's) text
        assert err["error"]["source"]["type"] == "http request"
        assert sent["payload"] == f"{text} : http://127.0.0.1:{port}/x"
        assert sent["statusCode"] == "ECONNREFUSED"
        h.receive("rq", {"url": f"{server}/text"})
        await h.wait("out", 2, timeout=5)
        statuses = h.statuses("rq")
    assert statuses == [
        {"fill": "blue", "shape": "dot", "text": "requesting"},
        {"fill": "red", "shape": "ring", "text": "ECONNREFUSED"},
        {"fill": "blue", "shape": "dot", "text": "requesting"},
        {},
    ]


@pytest.mark.slow  # waits on the wall clock: outside `make test-fast`
async def test_timeout_from_message(server: str) -> None:
    async with FlowHarness(flow(url=f"{server}/slow")) as h:
        h.receive("rq", {"requestTimeout": 200})
        (err,) = await h.wait("errs", timeout=5)
        (sent,) = await h.wait("out", timeout=5)
    assert err["error"]["message"] == "no response from server"
    assert sent["payload"] == f"TimeoutError: Timeout awaiting 'request' for 200ms : {server}/slow"
    assert sent["statusCode"] == "ETIMEDOUT"


async def test_an_unknown_host_is_enotfound(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests touch loopback only, so the resolver's answer for an unknown name is given here
    # rather than asked of the machine's DNS server.
    loop = asyncio.get_running_loop()
    real_getaddrinfo = loop.getaddrinfo

    async def getaddrinfo(host: object, *args: Any, **kwargs: Any) -> Any:
        if host == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]  # host is str | bytes | None at run time

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    url = "http://no-such-host.invalid/x"
    async with FlowHarness(flow()) as h:
        h.receive("rq", {"url": url})
        (err,) = await h.wait("errs", timeout=15)
        (sent,) = await h.wait("out", timeout=5)
        status = h.statuses("rq")[-1]
    assert err["error"]["message"] == "RequestError: getaddrinfo ENOTFOUND no-such-host.invalid"
    assert (sent["statusCode"], status["text"]) == ("ENOTFOUND", "ENOTFOUND")


@pytest.mark.slow  # waits on the wall clock: outside `make test-fast`
async def test_requests_run_concurrently(server: str) -> None:
    loop = asyncio.get_running_loop()
    async with FlowHarness(flow(url=f"{server}/slow", persist=True)) as h:
        started = loop.time()
        for _ in range(5):
            h.receive("rq", {})
        await h.wait("out", 5, timeout=8)
    assert loop.time() - started < 4  # five 2 s requests, not 10 s


async def test_missing_url_and_bad_scheme_are_errors(server: str) -> None:
    async with FlowHarness(flow()) as h:
        h.receive("rq", {"payload": 1})
        h.receive("rq", {"url": "ftp://example.invalid/file"})
        errs = await h.wait("errs", 2, timeout=5)
        assert "out" not in h.messages
    assert errs[0]["error"]["message"] == "No url specified"
    assert errs[1]["error"]["message"].startswith("Invalid URL 'ftp://")


@pytest.mark.parametrize(
    "bad", [{"url": "ftp://x/y"}, {"method": "BREW"}, {"ret": "xml"}, {"authType": "kerberos"}]
)
async def test_bad_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(DeployError):
        async with FlowHarness(flow(**bad)):
            pass


async def test_legacy_paytoqs_boolean_is_accepted(server: str) -> None:
    out = await request({"payload": {"a": "1"}}, url=f"{server}/echo", paytoqs=True, ret="obj")
    assert out["payload"]["query"] == {"a": "1"}
