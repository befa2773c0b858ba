"""``http in``: an HTTP endpoint on the runner's port that starts a flow per request."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, cast

from pydantic import field_validator

from edge_runner.contract import Category, NeedsUserFix, Node, NodeConfig, NodeSpec, register
from edge_runner.runtime.http_routes import ResponseHandle, compile_path, router_of


class Config(NodeConfig):
    url: str = ""
    method: Literal["get", "post", "put", "delete", "patch"] = "get"
    upload: bool = False
    swaggerDoc: str = ""  # noqa: N815  (Node-RED field name)

    @field_validator("method", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url_compiles(cls, value: str) -> str:
        if value:
            try:
                compile_path(value)
            except Exception as exc:  # re.error or anything the pattern builder rejects
                raise ValueError(f"invalid URL pattern {value!r}: {exc}") from exc
        return value


SPEC = NodeSpec(
    type="http in",
    version=1,
    category=Category.NETWORK,
    inputs=0,
    outputs=1,
    label="http in",
    color="#e7e7ae",
    icon="white-globe.svg",
    help="""Creates an HTTP endpoint on the runner's port. Every request starts the flow; an
`http response` node must answer it.

### Outputs
* `payload`: for GET the query parameters (object); for POST/PUT/PATCH/DELETE the body: JSON
  bodies are parsed, form bodies become an object, text stays a string, binary types a buffer.
* `req`: the request: `method`, `url`, `path`, `params` (from `/path/:name`), `query`,
  `headers` (lower-case names), `cookies`, `body`, `ip`; with **upload** also `files`
  (`fieldname`, `originalname`, `mimetype`, `size`, `buffer`).
* `res`: the handle the `http response` node answers through. Keep it on the message.

### Details
`url` uses Express syntax: `/user/:id`, optional `/user/:id?`, wildcard `/files/*`; matching
ignores case and a trailing slash. Bodies over 5 MB get `413`, bad JSON gets `400`, and a
request nobody answers gets `504` after 120 s. Unknown paths answer `404`.
""",
)


@register
class HttpInNode(Node):
    """Starts a flow for each HTTP request to its URL; `http response` answers it."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)

    async def start(self) -> None:
        if not self.cfg.url:
            raise NeedsUserFix("missing path: set the URL of this http in node")
        router_of(self.rt.services).add(
            self.cfg.method,
            self.cfg.url,
            self,
            self.handle,
            upload=self.cfg.upload and self.cfg.method == "post",
        )

    async def stop(self) -> None:
        router_of(self.rt.services).remove(self)

    def handle(self, req: dict[str, Any], params: dict[str, str], res: ResponseHandle) -> None:
        """Called by the server for each matching request."""
        msg: dict[str, Any] = {"_msgid": res.msgid, "req": req, "res": res}
        if self.cfg.method == "get":
            msg["payload"] = req["query"]
        else:
            msg["payload"] = req["body"]
        self.send(msg)
