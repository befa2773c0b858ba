"""``http response``: answer the request that an ``http in`` node turned into a message."""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar, cast
from urllib.parse import quote

from pydantic import field_validator

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeFailed, NodeSpec, register
from edge_runner.runtime.http_routes import HttpAnswer, ResponseHandle

# http request nodes mark headers they copied from an upstream response; Node-RED then drops
# them instead of echoing Content-Length & co. back to this client.
REQUEST_NODE_MARK = "x-node-red-request-node"


class Config(NodeConfig):
    statusCode: str = ""  # noqa: N815  (Node-RED field name)
    headers: dict[str, Any] = {}

    @field_validator("statusCode", mode="before")
    @classmethod
    def _status_text(cls, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("statusCode")
    @classmethod
    def _status_valid(cls, value: str) -> str:
        if value.strip() and not (value.strip().isdigit() and 100 <= int(value) <= 999):
            raise ValueError(f"status code must be a number 100-999, got {value!r}")
        return value.strip()

    @field_validator("headers", mode="before")
    @classmethod
    def _headers_object(cls, value: Any) -> Any:
        return {} if value in (None, "") else value


def _js_number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)


def _json_ready(value: Any) -> Any:
    """``JSON.stringify`` rules: NaN/Infinity -> null, bytes -> Node's Buffer JSON."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"type": "Buffer", "data": list(value)}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return None  # handles and other runtime objects are not data


def cookie_header(name: str, spec: Any) -> str:
    """A ``Set-Cookie`` value from ``msg.cookies[name]`` (a value, or Express cookie options);
    ``None`` or ``{"value": None}`` clears the cookie."""
    options: dict[str, Any] = spec if isinstance(spec, dict) else {"value": spec}
    value = options.get("value")
    clear = spec is None or value is None
    parts = [f"{name}={'' if clear else quote(str(value), safe='')}"]
    path = options.get("path", "/")
    parts.append(f"Path={path}")
    if options.get("domain"):
        parts.append(f"Domain={options['domain']}")
    if clear:
        parts.append("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    elif options.get("maxAge") is not None:
        try:
            # Express's maxAge is in milliseconds.
            parts.append(f"Max-Age={int(float(options['maxAge']) / 1000)}")
        except (TypeError, ValueError) as exc:
            raise NodeFailed(f"cookie {name!r}: maxAge must be a number") from exc
    elif options.get("expires"):
        parts.append(f"Expires={options['expires']}")
    if options.get("httpOnly"):
        parts.append("HttpOnly")
    if options.get("secure"):
        parts.append("Secure")
    if options.get("sameSite"):
        same = options["sameSite"]
        parts.append(f"SameSite={'Strict' if same is True else str(same).capitalize()}")
    return "; ".join(parts)


SPEC = NodeSpec(
    type="http response",
    version=1,
    category=Category.NETWORK,
    inputs=1,
    outputs=0,
    label="http response",
    color="#e7e7ae",
    icon="white-globe.svg",
    help="""Sends the answer to a request received by an `http in` node.

### Inputs
* `payload`: the body. An object or array is sent as JSON, a buffer as bytes, a number as
  text, a string as-is (`text/html` unless a content type is set).
* `statusCode` (optional): used when the node's own status code is empty; default 200.
* `headers` (optional): extra headers; the node's own headers win on a clash.
* `cookies` (optional): `{name: value}` or `{name: {value, maxAge (ms), path, domain,
  httpOnly, secure, sameSite}}`; `null` or `{value: null}` clears the cookie.
* `res`: must be the `msg.res` set by `http in`.

### Details
A message without `msg.res` (or whose request was already answered) produces a warning and no
response.
""",
)


@register
class HttpResponseNode(Node):
    """Answers the HTTP request carried by ``msg.res``."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)
        self.node_headers = [(str(k), str(v)) for k, v in self.cfg.headers.items()]
        self.node_status = int(self.cfg.statusCode) if self.cfg.statusCode else 0

    def on_message(self, msg: Msg) -> None:
        handle = msg.get("res")
        if not isinstance(handle, ResponseHandle):
            self.warn("No response object: the message did not come from an http in node")
            return
        if handle.answered:
            self.warn("The request was already answered; this response is dropped")
            return
        handle.respond(self.answer(msg))

    def answer(self, msg: Msg) -> HttpAnswer:
        headers = list(self.node_headers)
        taken = {name.lower() for name, _ in headers}
        extra = msg.get("headers")
        if isinstance(extra, dict) and REQUEST_NODE_MARK not in extra:
            for name, value in extra.items():
                if str(name).lower() not in taken:
                    headers.append((str(name), str(value)))
                    taken.add(str(name).lower())
        cookies = msg.get("cookies")
        if isinstance(cookies, dict):
            for name, spec in cookies.items():
                headers.append(("Set-Cookie", cookie_header(str(name), spec)))
        status = self.node_status or msg.get("statusCode") or 200
        try:
            status = int(status)
        except (TypeError, ValueError) as exc:
            raise NodeFailed(f"invalid msg.statusCode {status!r}") from exc
        if not 100 <= status <= 999:
            raise NodeFailed(f"invalid msg.statusCode {status}")
        body, content_type = self._body(msg)
        if content_type and "content-type" not in taken:
            headers.append(("Content-Type", content_type))
        return HttpAnswer(status, headers, body)

    @staticmethod
    def _body(msg: Msg) -> tuple[bytes, str]:
        if "payload" not in msg:
            return b"", ""
        payload = msg["payload"]
        if isinstance(payload, (bytes, bytearray, memoryview)):
            return bytes(payload), "application/octet-stream"
        if isinstance(payload, str):
            return payload.encode("utf-8"), "text/html; charset=utf-8"
        if isinstance(payload, (int, float)) and not isinstance(payload, bool):
            return _js_number(payload).encode(), "text/html; charset=utf-8"
        text = json.dumps(_json_ready(payload), separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8"), "application/json; charset=utf-8"
