"""The device's local status page: read-only, loopback by default, no scripts.

``GET /`` is an HTML page (refreshing itself every 5 s with ``<meta http-equiv="refresh">``)
and ``GET /status.json`` the same facts as JSON: the link state, the device name, the active
snapshot (name and generation), the engine state and restarts, per flow the node status counts
and the red nodes with their text, and the last 20 errors. Every other method answers 405 and
every other path 404, as JSON ``{code, message}``; a ``Host`` that is neither a loopback name
nor the bound address answers 421 (DNS rebinding; the Admin API's own host check).
"""

from __future__ import annotations

import asyncio
import html
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from edge_runner.agent.engine_client import EngineError
from edge_runner.runtime.admin_guard import is_loopback, split_host

if TYPE_CHECKING:
    from aiohttp import web

    from edge_runner.agent.apply import Applier

StateProvider = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
REFRESH_SECONDS = 5
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


async def device_status(applier: Applier, *, link: str, device_name: str) -> dict[str, Any]:
    """The status document of one agent (what ``StatusPage`` shows)."""
    state = applier.store.state
    supervisor = applier.supervisor
    try:
        engine = await asyncio.wait_for(applier.client.state(), 1.0)
    except (EngineError, TimeoutError):
        engine = {"state": "unreachable"}

    def snapshot(generation: int | None) -> dict[str, Any] | None:
        if generation is None:
            return None
        return {"generation": generation, "name": state.names.get(generation, "")}

    return {
        "link": link,
        "device": device_name,
        "active": snapshot(state.active),
        "last_good": snapshot(state.last_good),
        "handled": state.handled.as_dict() if state.handled else None,
        "engine": {
            "state": engine.get("state"),
            "text": engine.get("text", ""),
            "restarts": supervisor.restarts,
            "last_restart": supervisor.restart_log[-1][1] if supervisor.restart_log else "",
        },
        "flows": applier.watch.flows(applier.deployed_flows),
        "errors": list(applier.watch.errors),
    }


class StatusPage:
    """The aiohttp application of the status page; ``state_provider`` answers the status
    document (``device_status``), synchronously or as an awaitable."""

    def __init__(self, state_provider: StateProvider, bound_host: str = "127.0.0.1") -> None:
        self.state_provider = state_provider
        self.bound_host = bound_host.lower()
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        from aiohttp import web

        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self.page, allow_head=True)
        app.router.add_get("/status.json", self.status, allow_head=True)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve on ``host:port`` (loopback by default); answers the bound port."""
        from aiohttp import web

        self.bound_host = host.lower()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _document(self) -> Mapping[str, Any]:
        found = self.state_provider()
        if inspect.isawaitable(found):
            found = await found
        return found

    async def status(self, request: web.Request) -> web.Response:
        from aiohttp import web

        body = json.dumps(await self._document(), default=str, ensure_ascii=False)
        return web.Response(text=body, content_type="application/json", headers=HEADERS)

    async def page(self, request: web.Request) -> web.Response:
        from aiohttp import web

        text = render(await self._document())
        return web.Response(text=text, content_type="text/html", charset="utf-8", headers=HEADERS)

    def _host_allowed(self, header: str) -> bool:
        parsed = split_host(header)
        if parsed is None:
            return False
        host = parsed[0]
        return is_loopback(host) or host == self.bound_host.strip("[]")

    @property
    def _guard(self) -> Any:
        from aiohttp import web

        @web.middleware
        async def guard(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            if not self._host_allowed(request.headers.get("Host", "")):
                return _error(421, "host_not_allowed", "this page answers loopback names only")
            if request.method not in ("GET", "HEAD"):
                response = _error(405, "method_not_allowed", "the status page is read-only")
                response.headers["Allow"] = "GET, HEAD"
                return response
            if request.path not in ("/", "/status.json"):
                return _error(404, "not_found", f"no page {request.path}")
            return await handler(request)

        return guard


def _error(status: int, code: str, message: str) -> web.Response:
    from aiohttp import web

    return web.json_response({"code": code, "message": message}, status=status, headers=HEADERS)


def render(doc: Mapping[str, Any]) -> str:
    """The HTML page of a status document (every value escaped)."""

    def e(value: Any) -> str:
        return html.escape("" if value is None else str(value))

    active = doc.get("active") or {}
    engine = doc.get("engine") or {}
    rows = []
    for flow in doc.get("flows") or []:
        counts = ", ".join(f"{e(k)}: {e(v)}" for k, v in sorted((flow.get("status") or {}).items()))
        red = "".join(
            f"<li>{e(n.get('name'))} <code>{e(n.get('id'))}</code>: {e(n.get('text'))}</li>"
            for n in flow.get("red") or []
        )
        rows.append(
            f"<tr><td>{e(flow.get('label'))}</td><td>{e(flow.get('nodes'))}</td>"
            f"<td>{counts or '-'}</td><td><ul>{red}</ul></td></tr>"
        )
    errors = "".join(
        f"<li>{e(time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(err.get('time', 0))))} "
        f"<code>{e(err.get('node'))}</code> {e(err.get('message'))}</li>"
        for err in reversed(list(doc.get("errors") or []))
    )
    snapshot = (
        f"{e(active.get('name'))} (generation {e(active.get('generation'))})" if active else "none"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>{e(doc.get("device"))} - Manifold edge runner</title>
<style>body{{font-family:sans-serif;margin:1.5em}}td,th{{border-bottom:1px solid #ccc;
padding:.3em .6em;text-align:left;vertical-align:top}}table{{border-collapse:collapse}}</style>
</head><body>
<h1>{e(doc.get("device"))}</h1>
<dl>
<dt>Platform link</dt><dd>{e(doc.get("link"))}</dd>
<dt>Active snapshot</dt><dd>{snapshot}</dd>
<dt>Engine</dt><dd>{e(engine.get("state"))} {e(engine.get("text"))}
(restarts: {e(engine.get("restarts"))})</dd>
</dl>
<h2>Flows</h2>
<table><tr><th>Flow</th><th>Nodes</th><th>Status</th><th>Red nodes</th></tr>
{"".join(rows)}</table>
<h2>Last errors</h2>
<ul>{errors or "<li>none</li>"}</ul>
</body></html>
"""
