"""Routes of ``http in`` nodes and ``websocket-listener`` paths, served on the runner's port
(Node-RED's ``httpNodeRoot`` = ``/``).

The router is per engine and knows nothing of aiohttp: ``http in`` nodes add and remove routes,
the server matches a request, turns it into ``msg.req`` (a plain dict) and a ``ResponseHandle``
(``msg.res``), and waits for an ``http response`` node to answer through the handle.
Path syntax follows Express: ``/a/:id``, optional ``/a/:id?``, wildcards ``*``; matching is
case-insensitive and ignores one trailing slash, like Express's default router.
A websocket upgrade (``GET`` with ``Upgrade: websocket``) whose path is exactly a listener's path
goes to that listener, as Node-RED's server ``upgrade`` handler does; any other request, upgrade
or not, goes through the ``http in`` routes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

from edge_runner.contract import Services
from edge_runner.lib.jsonbody import parse_json

METHODS = ("get", "post", "put", "delete", "patch")

_PARAM = re.compile(r"(/?)(?::(\w+)(\?)?|(\*)(\w+)?)")


def compile_path(url: str) -> tuple[re.Pattern[str], list[str]]:
    """Express-style route pattern to a regex; returns (regex, parameter names)."""
    if not url.startswith("/"):
        url = "/" + url
    names: list[str] = []
    out: list[str] = []
    pos = 0
    wildcard = 0
    for match in _PARAM.finditer(url):
        out.append(re.escape(url[pos : match.start()]))
        slash, name, optional, _star, star_name = match.groups()
        if name:
            names.append(name)
            segment = r"([^/]+?)"
            if optional:
                out.append(f"(?:{re.escape(slash)}{segment})?")
            else:
                out.append(re.escape(slash) + segment)
        else:
            names.append(star_name or str(wildcard))
            if not star_name:
                wildcard += 1
            out.append(re.escape(slash) + r"(.*)")
        pos = match.end()
    out.append(re.escape(url[pos:]))
    body = "".join(out)
    if body.endswith("/") and len(body) > 1:
        body = body[:-1]
    return re.compile(f"^{body}/?$", re.IGNORECASE), names


class ResponseHandle:
    """``msg.res``: the pending HTTP answer for one ``http in`` request.

    Copies of a message share the handle (like Node-RED, ``msg.res`` is never cloned), so the
    ``http response`` node answers the right request whichever branch the message took.
    """

    __slots__ = ("_future", "msgid")

    def __init__(self, future: asyncio.Future[HttpAnswer], msgid: str) -> None:
        self._future = future
        self.msgid = msgid

    def __deepcopy__(self, memo: dict[int, Any]) -> ResponseHandle:
        return self

    def __copy__(self) -> ResponseHandle:
        return self

    def __repr__(self) -> str:
        return f"<ResponseHandle {self.msgid}{' answered' if self.answered else ''}>"

    @property
    def answered(self) -> bool:
        return self._future.done()

    def respond(self, answer: HttpAnswer) -> bool:
        """Answer the request; False if it was already answered (or the client is gone)."""
        if self._future.done():
            return False
        self._future.set_result(answer)
        return True


@dataclass
class HttpAnswer:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


RouteCallback = Callable[[dict[str, Any], dict[str, str], ResponseHandle], None]
# Takes the aiohttp request, answers the upgrade and returns the finished WebSocketResponse.
WebSocketHandler = Callable[[Any], Awaitable[Any]]


@dataclass
class Route:
    method: str
    url: str
    regex: re.Pattern[str]
    names: list[str]
    owner: object
    callback: Any  # RouteCallback; Any keeps bound methods of node classes assignable
    upload: bool = False


class HttpRouter:
    """The ``http in`` routes of one engine, in registration order (the first match wins)."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.websockets: dict[str, tuple[object, WebSocketHandler]] = {}

    def add(
        self, method: str, url: str, owner: object, callback: RouteCallback, upload: bool = False
    ) -> Route:
        method = method.lower()
        if method not in METHODS:
            raise ValueError(f"unsupported method {method!r}; use one of {', '.join(METHODS)}")
        regex, names = compile_path(url)
        route = Route(method, url, regex, names, owner, callback, upload)
        self.routes.append(route)
        return route

    def remove(self, owner: object) -> None:
        self.routes = [r for r in self.routes if r.owner is not owner]
        self.websockets = {p: h for p, h in self.websockets.items() if h[0] is not owner}

    def add_websocket(self, path: str, owner: object, handler: WebSocketHandler) -> str:
        """Serve websocket upgrades to ``path`` (exact, case-sensitive, like Node-RED) with
        ``handler``; returns the full path. ValueError when another owner has the path."""
        full = "/" + (path[1:] if path.startswith("/") else path)
        holder = self.websockets.get(full)
        if holder is not None and holder[0] is not owner:
            raise ValueError(f"Cannot have two WebSocket listeners on the same path: {path}")
        self.websockets[full] = (owner, handler)
        return full

    def websocket(self, path: str) -> WebSocketHandler | None:
        found = self.websockets.get(path)
        return found[1] if found is not None else None

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        method = method.lower()
        if method == "head":
            method = "get"
        for route in self.routes:
            if route.method != method:
                continue
            found = route.regex.match(path)
            if found is None:
                continue
            params = {
                name: unquote(value)
                for name, value in zip(route.names, found.groups(), strict=True)
                if value is not None
            }
            return route, params
        return None

    def allows(self, path: str) -> bool:
        """Whether any method has a route for ``path`` (for 404 vs 405 decisions)."""
        return any(r.regex.match(path) for r in self.routes)


ROUTER_KEY = "http.routes"


class _HasServices(Protocol):
    @property
    def services(self) -> Services: ...


def router_of(services: Services) -> HttpRouter:
    """The route table of one engine, an engine service (``http in`` nodes add to it)."""
    return services.get(ROUTER_KEY, HttpRouter)


def router_for(engine: _HasServices) -> HttpRouter:
    """The router of ``engine`` (created on first use; the server and ``http in`` share it)."""
    return router_of(engine.services)


def parse_query(query: list[tuple[str, str]]) -> dict[str, Any]:
    """Query string to ``msg.req.query`` like Express: repeated keys and ``a[]`` become lists."""
    out: dict[str, Any] = {}
    for key, value in query:
        if key.endswith("[]"):
            key = key[:-2]
            existing = out.get(key)
            if isinstance(existing, list):
                existing.append(value)
            else:
                out[key] = [value] if existing is None else [existing, value]
            continue
        if key in out:
            existing = out[key]
            out[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[key] = value
    return out


def parse_cookies(header: str) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        if "=" in part:
            name, _, value = part.strip().partition("=")
            if name and name not in cookies:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                cookies[name] = unquote(value)
    return cookies


# ----------------------------------------------------------------------------- aiohttp side

MAX_BODY = 5 * 1024 * 1024  # Node-RED's apiMaxLength default ("5mb")
RESPONSE_TIMEOUT_S = 120.0


class BadRequestError(Exception):
    """The request cannot become a message (bad JSON, too large); answered with ``status``."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _is_text(content_type: str) -> bool | None:
    """True: decode as text; False: keep bytes; None: text if it is valid UTF-8."""
    if not content_type:
        return True
    major, _, minor = content_type.partition("/")
    if major == "text" or minor == "xml" or minor.endswith("+xml"):
        return True
    if major != "application":
        return False
    if minor == "octet-stream":
        return False
    return None


async def read_whole(content: Any) -> bytes:
    """The whole body, however it was split (writes, chunks); 413 once it passes ``MAX_BODY``.
    (One ``content.read(n)`` returns only what has arrived so far.)"""
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequestError(413, f"request body larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Any, upload: bool) -> tuple[Any, list[dict[str, Any]]]:
    """Parse a request body like Node-RED's ``http in`` middleware chain.

    JSON -> object (empty -> ``{}``), urlencoded form -> object, multipart (``upload``) ->
    fields object plus ``files``, text/xml -> str, octet-stream and non-text types -> bytes,
    other ``application/*`` -> str when valid UTF-8.
    """
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BadRequestError(413, f"request body larger than {MAX_BODY} bytes")
    content_type = request.content_type.lower() if request.headers.get("Content-Type") else ""
    files: list[dict[str, Any]] = []
    if upload and content_type == "multipart/form-data":
        fields: dict[str, Any] = {}
        reader = await request.multipart()
        total = 0
        async for part in reader:
            if part.name is None:
                continue
            encoded = bytearray()
            while chunk := await part.read_chunk():
                total += len(chunk)
                if total > MAX_BODY:
                    raise BadRequestError(413, f"request body larger than {MAX_BODY} bytes")
                encoded.extend(chunk)
            data = part.decode(bytes(encoded))
            if part.filename is not None:
                files.append(
                    {
                        "fieldname": part.name,
                        "originalname": part.filename,
                        "mimetype": part.headers.get("Content-Type", "application/octet-stream"),
                        "size": len(data),
                        "buffer": bytes(data),
                    }
                )
            else:
                fields[part.name] = data.decode(part.get_charset("utf-8"), errors="replace")
        return fields, files
    raw = await read_whole(request.content)
    if content_type == "application/json" or content_type.endswith("+json"):
        if not raw.strip():
            return {}, files
        try:
            return parse_json(raw), files
        except ValueError as exc:
            raise BadRequestError(400, f"request body is not valid JSON: {exc}") from exc
    if content_type == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl

        text = raw.decode("utf-8", errors="replace")
        return parse_query(parse_qsl(text, keep_blank_values=True)), files
    text_mode = _is_text(content_type)
    if text_mode is True:
        return raw.decode(request.charset or "utf-8", errors="replace"), files
    if text_mode is None:
        try:
            return raw.decode("utf-8"), files
        except UnicodeDecodeError:
            return raw, files
    return raw, files


def build_req(
    request: Any, params: dict[str, str], body: Any, files: list[dict[str, Any]]
) -> dict[str, Any]:
    """``msg.req``: the request as plain data (Express property names)."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    peer = request.remote or ""
    req: dict[str, Any] = {
        "method": request.method,
        "url": request.path_qs,
        "originalUrl": request.path_qs,
        "baseUrl": "",
        "path": request.path,
        "params": params,
        "query": parse_query(list(request.query.items())),
        "headers": headers,
        "cookies": parse_cookies(headers.get("cookie", "")),
        "body": body,
        "ip": peer,
        "ips": [],
        "protocol": request.scheme,
        "hostname": request.host.split(":")[0] if request.host else "",
        "secure": request.secure,
        "xhr": headers.get("x-requested-with", "").lower() == "xmlhttprequest",
    }
    if files:
        req["files"] = files
    return req


async def handle_request(router: HttpRouter, request: Any, new_msgid: Callable[[], str]) -> Any:
    """Serve one request through the ``http in`` routes; 404 when no route matches."""
    from aiohttp import web

    if request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
        upgrade = router.websocket(request.path)
        if upgrade is not None:
            return await upgrade(request)
    found = router.match(request.method, request.path)
    if found is None:
        if request.method.upper() == "OPTIONS" and router.allows(request.path):
            return web.Response(status=204)
        return web.Response(status=404, text=f"Cannot {request.method} {request.path}")
    route, params = found
    body: Any = None
    files: list[dict[str, Any]] = []
    if route.method != "get":
        try:
            body, files = await read_body(request, route.upload)
        except BadRequestError as exc:
            return web.Response(status=exc.status, text=str(exc))
    future: asyncio.Future[HttpAnswer] = asyncio.get_running_loop().create_future()
    handle = ResponseHandle(future, new_msgid())
    req = build_req(request, params, body, files)
    try:
        route.callback(req, params, handle)
    except Exception as exc:  # the node's flow raised before answering
        if not future.done():
            return web.Response(status=500, text=f"flow failed: {exc}")
    try:
        answer = await asyncio.wait_for(asyncio.shield(future), RESPONSE_TIMEOUT_S)
    except TimeoutError:
        handle.respond(HttpAnswer(504))  # a late http response now finds it answered
        return web.Response(
            status=504,
            text=f"no http response node answered the request within {RESPONSE_TIMEOUT_S:g} s",
        )
    response = web.Response(status=answer.status, body=answer.body)
    response.headers.popall("Content-Type", None)
    for name, value in answer.headers:
        response.headers.add(name, value)
    return response
