"""The ``http request`` node: call an HTTP(S) endpoint and send on the response."""

from __future__ import annotations

import asyncio
import errno
import json
import re
import socket
import ssl
from typing import Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, field_validator

from edge_runner.contract import (
    Category,
    Msg,
    NeedsUserFix,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    get_property,
    register,
)

DEFAULT_TIMEOUT_MS = 120_000  # Node-RED's httpRequestTimeout default
MAX_BODY = 64 * 1024 * 1024  # a response larger than this is refused, not buffered
MAX_IN_FLIGHT = 1000  # requests of one node running or waiting at once
CONCURRENCY = 32  # requests of one node on the wire at once
MARKER = "x-node-red-request-node"  # tags response headers so they are not resent
_MUSTACHE = re.compile(r"\{\{\{\s*([^}]+?)\s*\}\}\}|\{\{\s*&?\s*([^}]+?)\s*\}\}")
_ESCAPE = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#39;",
    "/": "&#x2F;",
    "`": "&#x60;",
    "=": "&#x3D;",
}


class Header(BaseModel):
    """One row of the editor's header list."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    keyType: str = "other"  # noqa: N815  # Node-RED's field names
    keyValue: str = ""  # noqa: N815
    valueType: str = "other"  # noqa: N815
    valueValue: str = ""  # noqa: N815


class Config(NodeConfig):
    method: Literal["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "use"] = "GET"
    ret: Literal["txt", "bin", "obj"] = "txt"
    paytoqs: Literal["ignore", "query", "body"] = "ignore"
    url: str = ""
    tls: str = ""
    persist: bool = False
    proxy: str = ""
    insecureHTTPParser: bool = False  # noqa: N815  # Node-RED's field name
    authType: Literal["", "basic", "digest", "bearer"] = ""  # noqa: N815
    senderr: bool = False
    headers: tuple[Header, ...] = ()
    useAuth: bool = False  # noqa: N815  # pre-0.20 flows: basic auth when credentials are set

    @field_validator("paytoqs", mode="before")
    @classmethod
    def _legacy_paytoqs(cls, value: Any) -> Any:
        if value is True:
            return "query"
        return "ignore" if value in (False, None, "") else value

    @field_validator("headers", mode="before")
    @classmethod
    def _headers_list(cls, value: Any) -> Any:
        return () if value in (None, "", {}) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        text = value.strip()
        if (
            text
            and "://" in text
            and not text.lower().startswith(("http://", "https://"))
            and "{{" not in text.split("://")[0]
        ):
            raise ValueError(f"only http:// and https:// URLs are supported, not {value!r}")
        return text


SPEC = NodeSpec(
    type="http request",
    version=1,
    category=Category.NETWORK,
    inputs=1,
    outputs=1,
    label="http request",
    color="#e7e7ae",
    icon="white-globe.svg",
    credentials=("user", "password"),
    output_labels=("response",),
    help="""Sends an HTTP request and returns the response.

### Inputs
- **url** *string*: the URL when the node has none (`http://` is added when missing).
- **method** *string*: the method when *Method* is `use` (set by `msg.method`).
- **headers** *object*: request headers (the configured headers win).
- **cookies** *object*: cookies to send (`{name: value}`).
- **payload**: the body for POST/PUT/PATCH (objects are sent as JSON, or form-encoded when
  `content-type` is `application/x-www-form-urlencoded`); for GET with *paytoqs* `query` an
  object's keys are added to the query string, with `body` it is sent as the body.
- **requestTimeout** *number*: milliseconds before the request fails (default 120000).
- **rejectUnauthorized** *boolean*: `false` accepts any TLS certificate for this request
  (only without a *tls* node: the TLS configuration decides when there is one).
- **followRedirects** *boolean*: `false` returns 3xx responses instead of following them.

### Outputs
- **payload** *string | bytes | object*: the body, as UTF-8 text (`txt`), bytes (`bin`) or
  parsed JSON (`obj`; text with a warning when it is not JSON).
- **statusCode** *number*, **headers** *object* (lower-case names), **responseUrl**
  *string* (after redirects), **redirectList** *array*, **responseCookies** *object*.

### Details
*tls* names a `tls-config` node: its CA is trusted for `https://` URLs, its certificate and
key are presented when the server asks for one, and its *verifyservercert* decides whether the
server's certificate is checked. A server certificate that cannot be verified fails the request
with Node.js's text and code (`self-signed certificate`, `DEPTH_ZERO_SELF_SIGNED_CERT`).

*URL* may hold `{{property}}` templates filled from the message (`{{{property}}}` unescaped).
*authType* `basic`/`digest` use the *user*/*password* credentials, `bearer` sends the
password as a token. *persist* keeps connections open between requests. A failed request
(no connection, timeout, bad URL) raises a catchable error, turns the status red and, unless
*senderr* is set, also sends the message on with the error text as payload, as Node-RED does:
`RequestError: connect ECONNREFUSED 127.0.0.1:1 : <url>` with `msg.statusCode` and the status
`ECONNREFUSED` (likewise `ENOTFOUND`, `ECONNRESET`, certificate codes); a timeout reports
`no response from server` with `msg.statusCode` `ETIMEDOUT`. With *senderr*
non-2xx responses are raised as errors too, instead of being sent.
""",
)


def render_url(template: str, msg: Msg) -> str:
    """Mustache as Node-RED applies it to URLs: ``{{x}}`` HTML-escaped, ``{{{x}}}`` raw."""

    def repl(match: re.Match[str]) -> str:
        raw, name = match.group(1), match.group(2)
        try:
            value = get_property(msg, (raw or name).strip())
        except ValueError:
            value = None
        if value is None:
            return ""
        text = (
            value
            if isinstance(value, str)
            else json.dumps(value)
            if isinstance(value, (dict, list))
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
        if raw is not None or match.group(0).startswith("{{&"):
            return text
        return "".join(_ESCAPE.get(c, c) for c in text)

    return _MUSTACHE.sub(repl, template)


def _headers_hash(headers: dict[str, Any]) -> str:
    import hashlib  # lazily: loading OpenSSL costs startup time

    body = {k: v for k, v in headers.items() if k != MARKER}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


NO_RESPONSE = "no response from server"

# OpenSSL verify codes -> Node.js's error code and text for the certificate errors users meet.
_CERT_ERRORS = {
    9: ("CERT_NOT_YET_VALID", "certificate is not yet valid"),
    10: ("CERT_HAS_EXPIRED", "certificate has expired"),
    18: ("DEPTH_ZERO_SELF_SIGNED_CERT", "self-signed certificate"),
    19: ("SELF_SIGNED_CERT_IN_CHAIN", "self-signed certificate in certificate chain"),
    20: ("UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "unable to get local issuer certificate"),
    21: ("UNABLE_TO_VERIFY_LEAF_SIGNATURE", "unable to verify the first certificate"),
}
_HOSTNAME_MISMATCH = 62


def connect_error(os_error: OSError | None, host: str, port: int | None) -> tuple[str, str]:
    """Node.js's text and code for a failed connection: ``connect ECONNREFUSED 127.0.0.1:1``,
    ``getaddrinfo ENOTFOUND nosuch.example``."""
    if isinstance(os_error, socket.gaierror):
        return f"getaddrinfo ENOTFOUND {host}", "ENOTFOUND"
    number = os_error.errno if os_error is not None else None
    code = errno.errorcode.get(number, "ECONNREFUSED") if isinstance(number, int) else ""
    if not code:
        code = "ETIMEDOUT" if isinstance(os_error, TimeoutError) else "ECONNREFUSED"
    return f"connect {code} {host}:{port}", code


def certificate_error(error: BaseException, host: str) -> tuple[str, str]:
    """Node.js's text and code for a server certificate that does not verify."""
    verify_code = getattr(error, "verify_code", None)
    detail = getattr(error, "verify_message", "") or str(error)
    if verify_code == _HOSTNAME_MISMATCH:
        # OpenSSL names the server name checked (the tls node's servername, if set)
        named = re.search(r"'([^']+)'", detail)
        checked = named[1] if named else host
        text = f"Hostname/IP does not match certificate's altnames: Host: {checked}."
        return text, "ERR_TLS_CERT_ALTNAME_INVALID"
    if verify_code in _CERT_ERRORS:
        code, text = _CERT_ERRORS[verify_code]
        return text, code
    return f"certificate verify failed: {detail}", "CERT_VERIFY_FAILED"


def _body(payload: Any, headers: dict[str, str]) -> bytes | None:
    if payload is None:
        return None
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    content_type = headers.get("content-type", "")
    if isinstance(payload, (dict, list)):
        if isinstance(payload, dict) and content_type.startswith(
            "application/x-www-form-urlencoded"
        ):
            from urllib.parse import urlencode

            return urlencode(
                {k: "" if v is None else v for k, v in payload.items()}, doseq=True
            ).encode()
        headers.setdefault("content-type", "application/json")
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    if isinstance(payload, bool):
        return b"true" if payload else b"false"
    return str(payload).encode()


@register
class HttpRequestNode(Node):
    """Send an HTTP request per message and pass on the response."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)
        self.session: Any = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.gate = asyncio.Semaphore(CONCURRENCY)
        self.tls: ssl.SSLContext | None = None
        self.client_certificate = False
        self.proxy_url: str | None = None
        self.failing = False

    def _config_node(self, node_id: str, what: str) -> Any:
        rt = self.rt.peer(node_id)
        if rt is None:
            raise NeedsUserFix(f"{what} configuration node {node_id!r} not found")
        return rt.node.config

    async def start(self) -> None:
        import aiohttp  # lazily: idle startup of the runner must not pay for it

        if self.cfg.tls:
            from edge_runner.nodes.tls_config import tls_of

            # checked now: a bad certificate or key fails the deploy's start, not each request
            tls = tls_of(self, self.cfg.tls)
            self.tls = tls.client_context()
            self.client_certificate = tls.has_client_certificate
        if self.cfg.proxy:
            proxy = self._config_node(self.cfg.proxy, "proxy")
            self.proxy_url = getattr(proxy, "url", None) or None
        connector = aiohttp.TCPConnector(force_close=not self.cfg.persist, limit=CONCURRENCY)
        self.session = aiohttp.ClientSession(
            connector=connector, trust_env=False, auto_decompress=True
        )

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        if self.session is not None:
            await self.session.close()
            self.session = None

    def on_message(self, msg: Msg) -> None:
        # Requests run concurrently (as in Node-RED); the node returns at once.
        if len(self.tasks) >= MAX_IN_FLIGHT:
            raise NodeFailed(f"{MAX_IN_FLIGHT} requests already in flight; message dropped")
        task = asyncio.get_running_loop().create_task(self._request(msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ------------------------------------------------------------------ request building
    def _url(self, msg: Msg) -> str:
        url = self.cfg.url
        if url and isinstance(msg.get("url"), str) and msg["url"] != url:
            self.warn("msg.url property will not override node configured url")
        if not url:
            url = msg.get("url") or ""
        if not isinstance(url, str) or not url.strip():
            raise NodeFailed("No url specified")
        if "{{" in url:
            url = render_url(url, msg)
        url = url.strip()
        lowered = url.lower()
        if "://" in url.split("?")[0] and not lowered.startswith(("http://", "https://")):
            raise NodeFailed(f"Invalid URL {url!r}: only http and https are supported")
        if not lowered.startswith(("http://", "https://")):
            url = ("https://" if self.cfg.tls else "http://") + url.lstrip("/")
        return url

    def _method(self, msg: Msg) -> str:
        if self.cfg.method == "use":
            method = msg.get("method")
            return method.upper() if isinstance(method, str) and method else "GET"
        if isinstance(msg.get("method"), str) and msg["method"].upper() != self.cfg.method:
            self.warn("msg.method will not override node configured method")
        return self.cfg.method

    def _headers(self, msg: Msg) -> dict[str, str]:
        headers: dict[str, str] = {}
        given = msg.get("headers")
        # Response headers of an earlier request, left on the message, are not resent.
        if isinstance(given, dict) and given.get(MARKER) != _headers_hash(given):
            for name, value in given.items():
                if name.lower() != MARKER and value is not None:
                    headers[name.lower()] = str(value)
        for row in self.cfg.headers:
            name = (
                row.keyValue
                if row.keyType == "other"
                else get_property(msg, row.keyValue)
                if row.keyType == "msg"
                else row.keyType
            )
            value = (
                row.valueValue
                if row.valueType == "other"
                else get_property(msg, row.valueValue)
                if row.valueType == "msg"
                else row.valueType
            )
            if name and value is not None:
                headers[str(name).lower()] = str(value)
        cookies = msg.get("cookies")
        if isinstance(cookies, dict) and cookies:
            pairs = [
                f"{k}={v['value'] if isinstance(v, dict) else v}"
                for k, v in cookies.items()
                if v is not None
            ]
            headers["cookie"] = "; ".join(filter(None, [headers.get("cookie"), *pairs]))
        return headers

    def _auth(self, headers: dict[str, str]) -> list[Any]:
        """Set the authorization header (basic, bearer) or return the digest middleware."""
        import aiohttp

        creds = getattr(self.rt, "credentials", None) or {}
        user, password = str(creds.get("user") or ""), str(creds.get("password") or "")
        kind = self.cfg.authType or ("basic" if self.cfg.useAuth and user else "")
        if kind == "basic" and (user or password):
            if ":" in user:
                raise NodeFailed("a ':' is not allowed in a basic-auth user name")
            headers["authorization"] = aiohttp.encode_basic_auth(user, password)
        elif kind == "digest" and (user or password):
            return [aiohttp.DigestAuthMiddleware(user, password, preemptive=False)]
        elif kind == "bearer" and password:
            headers["authorization"] = f"Bearer {password}"
        return []

    # ------------------------------------------------------------------ the request
    async def _request(self, msg: Msg) -> None:
        async with self.gate:
            try:
                await self._perform(msg)
            except NodeFailed as exc:
                # Bad input (no URL, oversized response): reported, not sent on.
                self.failing = True
                self.status("red", "ring", str(exc)[:60])
                self.error(str(exc), msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a request task must never die silently
                self.failing = True
                self.status("red", "ring", type(exc).__name__)
                self.error(f"request failed: {exc or type(exc).__name__}", msg)

    def _failed(
        self, msg: Msg, text: str, short: str, url: str = "", code: str = "", payload: str = ""
    ) -> None:
        """Node-RED's report of a request that got no response: the error, ``msg.payload``
        ``"<error> : <url>"`` and ``msg.statusCode`` the error code (``ECONNREFUSED``)."""
        self.failing = True
        self.status("red", "ring", short)
        payload = payload or text
        msg["payload"] = f"{payload} : {url}" if url else payload
        if code:
            msg["statusCode"] = code
        self.error(text, msg)
        if not self.cfg.senderr:
            self.send(msg)

    async def _perform(self, msg: Msg) -> None:
        import aiohttp
        from yarl import URL

        url = self._url(msg)
        method = self._method(msg)
        headers = self._headers(msg)
        middlewares = self._auth(headers)
        params: dict[str, str] | None = None
        data: bytes | None = None
        payload = msg.get("payload")
        if method in ("GET", "HEAD") and self.cfg.paytoqs != "body":
            if self.cfg.paytoqs == "query" and isinstance(payload, dict):
                params = {
                    k: json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                    for k, v in payload.items()
                    if v is not None
                }
        elif method != "HEAD" or self.cfg.paytoqs == "body":
            data = _body(payload, headers)
        timeout_ms = msg.get("requestTimeout")
        if (
            not isinstance(timeout_ms, (int, float))
            or isinstance(timeout_ms, bool)
            or timeout_ms <= 0
        ):
            if timeout_ms is not None:
                self.warn("requestTimeout must be a positive number of milliseconds")
            timeout_ms = DEFAULT_TIMEOUT_MS
        tls = self._tls_option(msg)
        self.status("blue", "dot", "requesting")
        try:
            request_url = URL(url)
            if request_url.user is not None:
                if "authorization" not in headers and not middlewares:
                    headers["authorization"] = aiohttp.encode_basic_auth(
                        request_url.user or "", request_url.password or ""
                    )
                request_url = request_url.with_user(None)
            async with self.session.request(
                method,
                request_url,
                params=params,
                data=data,
                headers=headers,
                middlewares=middlewares or None,
                ssl=tls,
                proxy=self.proxy_url,
                allow_redirects=msg.get("followRedirects") is not False,
                timeout=aiohttp.ClientTimeout(total=timeout_ms / 1000),
            ) as response:
                body = await self._read(response)
                history = [
                    {"location": str(r.headers.get("location", "")), "cookies": {}}
                    for r in response.history
                ]
                self._respond(msg, response, body, history)
        except TimeoutError:
            # got's TimeoutError (code ETIMEDOUT); the node reports Node-RED's own text
            text = f"TimeoutError: Timeout awaiting 'request' for {timeout_ms:g}ms"
            self._failed(msg, NO_RESPONSE, NO_RESPONSE, url, "ETIMEDOUT", payload=text)
        except aiohttp.ClientConnectorCertificateError as exc:  # a ValueError too
            text, code = certificate_error(exc.certificate_error, exc.host)
            self._failed(msg, f"RequestError: {text}", code, url, code)
        except aiohttp.ClientConnectorSSLError as exc:
            self._tls_failed(msg, exc, url)
        except (aiohttp.InvalidURL, ValueError) as exc:
            self._failed(msg, f"Invalid URL {url!r}: {exc}", "invalid url")
        except aiohttp.ClientConnectorError as exc:
            text, code = connect_error(exc.os_error, exc.host, exc.port)
            self._failed(msg, f"RequestError: {text}", code, url, code)
        except aiohttp.ClientError as exc:
            if self._tls_failed(msg, exc, url):
                return
            if isinstance(exc, aiohttp.ServerDisconnectedError):
                text, code = "RequestError: socket hang up", "ECONNRESET"
                if url.lower().startswith("https:") and not self.client_certificate:
                    # asyncio drops TLS 1.3's "certificate required" alert: name the cause
                    text += " (a server that requires a client certificate does this; none is set)"
                self._failed(msg, text, code, url, code)
                return
            self._failed(msg, f"RequestError: {exc or type(exc).__name__}", type(exc).__name__, url)

    def _tls_option(self, msg: Msg) -> ssl.SSLContext | bool | None:
        """aiohttp's ``ssl``: the tls-config node's context when there is one (it decides
        verification, and ``msg.rejectUnauthorized`` is ignored, as in Node-RED); otherwise
        ``msg.rejectUnauthorized`` false turns verification off; None is aiohttp's default."""
        if self.tls is not None:
            return self.tls
        value = msg.get("rejectUnauthorized")
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if value is None:
            return None
        if not isinstance(value, bool):
            self.warn("msg.rejectUnauthorized must be true or false; ignored")
            return None
        return None if value else False

    def _tls_failed(self, msg: Msg, exc: BaseException, url: str) -> bool:
        """Report a TLS failure (untrusted server, refused client certificate) with its short
        reason; False when ``exc`` is not about TLS."""
        from edge_runner.lib.tls import tls_failure

        failure = tls_failure(exc)
        if failure is None:
            return False
        text = str(failure)
        self._failed(msg, f"RequestError: {text}", text.split(":", 1)[0], url)
        return True

    async def _read(self, response: Any) -> bytes:
        length = response.content_length
        if length is not None and length > MAX_BODY:
            raise NodeFailed(f"response of {length} bytes exceeds the {MAX_BODY} byte limit")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > MAX_BODY:
                raise NodeFailed(f"response exceeds the {MAX_BODY} byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    def _respond(self, msg: Msg, response: Any, body: bytes, history: list[dict[str, Any]]) -> None:
        headers: dict[str, Any] = {}
        for name, value in response.headers.items():
            key = name.lower()
            if key == "set-cookie":
                headers.setdefault(key, []).append(value)
            elif key in headers:
                headers[key] = f"{headers[key]}, {value}"
            else:
                headers[key] = value
        headers[MARKER] = _headers_hash(headers)
        msg["statusCode"] = response.status
        msg["headers"] = headers
        msg["responseUrl"] = str(response.url)
        msg["redirectList"] = history
        cookies = {name: {"value": morsel.value} for name, morsel in response.cookies.items()}
        if cookies:
            msg["responseCookies"] = cookies
        if self.cfg.ret == "bin":
            msg["payload"] = body
        else:
            text = body.decode(response.charset or "utf-8", errors="replace")
            msg["payload"] = text
            if self.cfg.ret == "obj":
                try:
                    msg["payload"] = json.loads(text)
                except ValueError:
                    self.warn("JSON parse error")
        if self.cfg.senderr and not 200 <= response.status < 300:
            self.failing = True
            self.status("red", "ring", str(response.status))
            self.error(f"HTTP {response.status} {response.reason or ''}".strip(), msg)
            return
        self.failing = False
        self.status()
        self.send(msg)
