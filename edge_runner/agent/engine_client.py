"""The agent's only way into the engine: its Admin API and ``/comms``, over loopback HTTP.

The agent never imports the engine. Deploys are Node-RED API v2 full deploys; credentials
travel as each node's ``credentials`` field, which the engine's deployer splits off and commits
with the flows as one unit (family 34). Every request carries ``Authorization: Bearer`` (the
device credential in managed mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

log = logging.getLogger("edge_runner.agent.engine")

V2 = {"Node-RED-API-Version": "v2", "Node-RED-Deployment-Type": "full"}
REQUEST_TIMEOUT_S = 30.0
# Developer mode may reach these Admin API paths only (device-protocol.md, ``dev_request``).
DEV_PATHS = re.compile(r"^/(?:flows|flows/state|inject/[A-Za-z0-9_.:-]{1,128})$")
DEV_METHODS = {"/flows": {"GET", "POST"}, "/flows/state": {"GET"}}

EventCallback = Callable[[str, Any], Awaitable[None] | None]


class EngineError(Exception):
    """The engine did not answer, or answered something the agent cannot use."""


class EngineClient:
    """A client of one engine at ``base_url`` (``http://127.0.0.1:<port>``)."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------ Admin API
    async def deploy(
        self, flows: list[Any], credentials: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Full deploy of ``flows`` with ``credentials`` (node id -> fields). Answers the
        engine's ``DeployResult`` as JSON: ``status`` (``accepted``,
        ``started_with_failures``, ``waiting``, ``rejected``), ``rev``, ``failures``,
        ``missing_types``, ``errors``, ``message``. Raises ``EngineError`` when the engine
        cannot be reached or fails to store the flows."""
        body = {"flows": with_credentials(flows, credentials)}
        status, doc = await self._call("POST", "/flows", body, V2)
        if status == 200 and isinstance(doc, dict):
            failures = doc.get("failures") or []
            missing = doc.get("missing_types") or []
            result = "waiting" if missing else "started_with_failures" if failures else "accepted"
            return {
                "status": result,
                "rev": doc.get("rev"),
                "failures": failures,
                "missing_types": missing,
                "errors": [],
                "message": _problems(result, failures) if failures else result,
            }
        if status == 400 and isinstance(doc, dict) and doc.get("code") == "invalid_flows":
            return {
                "status": "rejected",
                "rev": None,
                "failures": [],
                "missing_types": [],
                "errors": doc.get("errors") or [],
                "message": str(doc.get("message", "rejected")),
            }
        raise EngineError(f"deploy answered {status}: {_describe(doc)}")

    async def state(self) -> dict[str, Any]:
        """``GET /flows/state``: ``{"state": "start" | "stop" | "safe", ...}``."""
        status, doc = await self._call("GET", "/flows/state", None, {})
        if status != 200 or not isinstance(doc, dict):
            raise EngineError(f"/flows/state answered {status}: {_describe(doc)}")
        return doc

    async def flows(self) -> list[Any]:
        status, doc = await self._call("GET", "/flows", None, {})
        if status != 200 or not isinstance(doc, list):
            raise EngineError(f"/flows answered {status}: {_describe(doc)}")
        return doc

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Developer mode: one Admin API call, limited to ``/flows``, ``/flows/state`` and
        ``POST /inject/<id>``. Anything else answers 403 without reaching the engine."""
        method = method.upper()
        allowed = DEV_METHODS.get(path, {"POST"} if path.startswith("/inject/") else set())
        if not DEV_PATHS.match(path) or method not in allowed:
            return 403, {
                "code": "not_allowed",
                "message": f"developer mode may not call {method} {path}",
            }
        headers = {"Node-RED-API-Version": "v2"} if path == "/flows" else {}
        return await self._call(method, path, body, headers)

    async def _call(
        self, method: str, path: str, body: Any, headers: Mapping[str, str]
    ) -> tuple[int, Any]:
        try:
            async with self.session.request(
                method,
                self.base_url + path,
                # a write always carries JSON (the Admin API's door refuses anything else)
                json=(body if body is not None else {}) if method != "GET" else None,
                headers={**self._headers, **headers},
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            ) as response:
                raw = await response.read()
                if not raw:
                    return response.status, None
                try:
                    return response.status, json.loads(raw)
                except ValueError:
                    return response.status, raw.decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise EngineError(f"{method} {path}: {exc or type(exc).__name__}") from exc

    # ------------------------------------------------------------------ /comms
    async def subscribe(
        self, callback: EventCallback, topics: tuple[str, ...] = ("debug", "status/#")
    ) -> None:
        """Receive ``/comms`` events (``callback(topic, data)``) until cancelled; reconnects
        after a lost connection (the engine restarted) and resubscribes. Retained status
        items are replayed by the engine on every subscribe."""
        while True:
            try:
                async with self.session.ws_connect(
                    self.base_url + "/comms", headers=self._headers, heartbeat=30
                ) as ws:
                    for topic in topics:
                        await ws.send_str(json.dumps({"subscribe": topic}))
                    async for frame in ws:
                        if frame.type != aiohttp.WSMsgType.TEXT:
                            break
                        for topic, data in _items(frame.data):
                            try:
                                outcome = callback(topic, data)
                                if outcome is not None:
                                    await outcome
                            except Exception:
                                log.exception("comms: the event callback failed")
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.debug("comms: %s; reconnecting", exc)
            await asyncio.sleep(0.5)


def with_credentials(flows: list[Any], credentials: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    """Copies of the nodes with their ``credentials`` field set (the Node-RED deploy form)."""
    out = []
    for node in flows:
        if isinstance(node, dict) and node.get("id") in credentials:
            node = {**node, "credentials": dict(credentials[node["id"]])}
        out.append(node)
    return out


def _items(text: str) -> list[tuple[str, Any]]:
    with contextlib.suppress(ValueError):
        batch = json.loads(text)
        if isinstance(batch, list):
            return [
                (str(i["topic"]), i.get("data"))
                for i in batch
                if isinstance(i, dict) and "topic" in i
            ]
    return []


def _problems(status: str, failures: list[Any]) -> str:
    listed = "; ".join(
        f"{f.get('id')}: {f.get('error')}" for f in failures[:10] if isinstance(f, dict)
    )
    return f"{status.replace('_', ' ')}: {listed}"


def _describe(doc: Any) -> str:
    if isinstance(doc, dict) and "message" in doc:
        return f"{doc.get('code', '')} {doc['message']}".strip()
    return str(doc)[:200]
