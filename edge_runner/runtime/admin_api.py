"""The Node-RED Admin API subset of ENGINE_CONTRACT.md §2: ``GET/POST /flows`` and
``POST /inject/:id``.

A deploy is two-phase so that a full disk or a rejected configuration never leaves the
flows file and the running flows disagreeing: the new flows are written and fsynced to a temp
file while the engine validates them, and the temp file is renamed over ``flows.json`` once the
engine has accepted them, before it restarts nodes. If the engine rejects the flows (HTTP 400
with per-node errors) nothing changed; if the write fails (HTTP 500) the engine is rolled back
to the stored flows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from edge_runner.lib.jsonbody import parse_json
from edge_runner.runtime.storage import FlowStorage, PendingWrite, revision, serialize_flows

if TYPE_CHECKING:
    from aiohttp import web

    from edge_runner.runtime.engine import Engine

log = logging.getLogger("edge_runner.admin")

JSON_TYPE = "application/json"
# The engine announces an accepted deploy (validated, about to restart nodes) with this event.
ACCEPTED_TOPIC = "notification/runtime-state"
ACCEPTED_DATA = {"state": "stop", "deploy": True}
DEPLOY_TYPES = ("full", "flows", "nodes", "reload")


def strip_credentials(flows: list[Any]) -> list[Any]:
    """Credentials travel with a deploy but are stored apart (encrypted) by the engine."""
    return [
        {k: v for k, v in n.items() if k != "credentials"}
        if isinstance(n, dict) and "credentials" in n
        else n
        for n in flows
    ]


class AdminApi:
    """Handlers for the Admin API; one instance per server."""

    def __init__(self, engine: Engine, storage: FlowStorage) -> None:
        self.engine = engine
        self.storage = storage
        self.lock = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._commit_step: _Commit | None = None
        engine.subscribe(self.on_engine_event)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/flows", self.get_flows)
        app.router.add_post("/flows", self.post_flows)
        app.router.add_post("/inject/{id}", self.post_inject)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _json(status: int, body: bytes) -> web.Response:
        from aiohttp import web

        return web.Response(status=status, body=body, content_type=JSON_TYPE, charset="utf-8")

    @classmethod
    def _error(cls, status: int, code: str, message: str, **extra: Any) -> web.Response:
        doc = {"code": code, "message": message, **extra}
        return cls._json(status, json.dumps(doc, ensure_ascii=False, default=str).encode())

    @staticmethod
    def _text(status: int, text: str) -> web.Response:
        from aiohttp import web

        return web.Response(status=status, text=text, content_type="text/plain", charset="utf-8")

    # ------------------------------------------------------------------ GET /flows
    async def get_flows(self, request: web.Request) -> web.Response:
        storage = self.storage
        if request.headers.get("Node-RED-API-Version", "").lower() == "v2":
            body = b'{"flows":' + storage.data + b',"rev":"' + storage.rev.encode() + b'"}'
            return self._json(200, body)
        return self._json(200, storage.data)

    # ------------------------------------------------------------------ POST /flows
    async def post_flows(self, request: web.Request) -> web.Response:
        v2 = request.headers.get("Node-RED-API-Version", "").lower() == "v2"
        kind = request.headers.get("Node-RED-Deployment-Type", "full").strip().lower() or "full"
        if kind not in DEPLOY_TYPES:
            return self._error(
                400,
                "invalid_deployment_type",
                f"Node-RED-Deployment-Type must be one of {', '.join(DEPLOY_TYPES)}, got {kind!r}",
            )
        raw = await request.read()
        try:
            body = parse_json(raw) if raw.strip() else None
        except ValueError as exc:
            return self._error(400, "unexpected_error", f"request body is not valid JSON: {exc}")
        rev: str | None = None
        if v2:
            if not isinstance(body, dict):
                return self._error(
                    400,
                    "unexpected_error",
                    'API v2 expects a JSON object {"flows": [...], "rev": "..."}',
                )
            flows = body.get("flows")
            given_rev = body.get("rev")
            if given_rev is not None and not isinstance(given_rev, str):
                return self._error(400, "unexpected_error", "rev must be a string")
            rev = given_rev
        else:
            flows = body
        if kind == "reload":
            flows = self.storage.flows
        if not isinstance(flows, list):
            return self._error(400, "unexpected_error", "flows must be a JSON array of nodes")
        async with self.lock:
            if rev is not None and rev != self.storage.rev:
                return self._error(409, "version_mismatch", "Error")
            try:
                new_rev = await self.deploy(flows, "full" if kind == "reload" else kind)
            except _RejectedError as exc:
                return exc.response
        if not v2:
            from aiohttp import web

            return web.Response(status=204)
        return self._json(200, b'{"rev":"' + new_rev.encode() + b'"}')

    async def deploy(self, flows: list[Any], kind: str) -> str:
        """Validate, store (two-phase) and run ``flows``; returns the new revision."""
        from edge_runner.runtime.engine import DeployError

        stored = strip_credentials(flows)
        try:
            data = serialize_flows(stored)
        except (TypeError, ValueError) as exc:
            raise _RejectedError(
                self._error(400, "unexpected_error", f"flows cannot be stored: {exc}")
            ) from exc
        new_rev = revision(data)
        # Phase one (write + fsync, I/O off the GIL) overlaps the engine's validation (CPU).
        # Phase two (rename + fsync of the directory) runs when the engine has accepted the
        # flows and before it stops and starts nodes, like Node-RED, which saves before it
        # restarts: the flows file never holds a rejected configuration, and new nodes' timers
        # (inject once) do not start long before the deploy is answered.
        job = self._writer().submit(self.storage.prepare, data)
        step = _Commit(job, self.storage, stored, data)
        self._commit_step = step
        try:
            await self.engine.deploy(flows, kind, new_rev)
        except DeployError as exc:
            step.discard()
            raise _RejectedError(
                self._error(400, "invalid_flows", f"deploy rejected: {exc}", errors=exc.errors)
            ) from exc
        except BaseException:
            step.discard()
            raise
        finally:
            self._commit_step = None
        if not step.done:  # the engine did not announce the accept point: commit now
            await asyncio.to_thread(step.run)
        if step.error is not None:
            log.error("deploy undone, flows could not be stored: %s", step.error)
            await self.engine.deploy(self.storage.flows, kind, self.storage.rev)
            raise _RejectedError(
                self._error(500, "storage_error", f"flows could not be written: {step.error}")
            )
        return new_rev

    def _writer(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="flows-writer")
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def on_engine_event(self, topic: str, data: Any) -> None:
        """Engine listener: the deploy was accepted -> make the new flows file durable."""
        step = self._commit_step
        if step is not None and topic == ACCEPTED_TOPIC and data == ACCEPTED_DATA:
            self._commit_step = None
            step.run()

    # ------------------------------------------------------------------ POST /inject/:id
    async def post_inject(self, request: web.Request) -> web.Response:
        node_id = request.match_info["id"]
        rt = self.engine.nodes.get(node_id)
        if rt is None:
            return self._text(404, "Not Found")
        msg: dict[str, Any] = {}
        raw = await request.read()
        if raw.strip():
            try:
                body = parse_json(raw)
            except ValueError as exc:
                return self._error(
                    400, "unexpected_error", f"request body is not valid JSON: {exc}"
                )
            if isinstance(body, dict) and body.get("__user_inject_props__"):
                msg = body
        try:
            rt.receive(msg)
        except Exception as exc:  # the node's handler is isolated by the engine; belt and braces
            log.exception("inject %s failed", node_id)
            rt.error(f"inject failed: {exc}")
            return self._text(500, "Internal Server Error")
        return self._text(200, "OK")


class _Commit:
    """Phase two of a deploy's flows write, run once (from the engine's accept event)."""

    def __init__(
        self, job: Future[PendingWrite], storage: FlowStorage, flows: list[Any], data: bytes
    ) -> None:
        self.job, self.storage, self.flows, self.data = job, storage, flows, data
        self.done = False
        self.error: OSError | None = None

    def run(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            pending = self.job.result()
            pending.commit()
        except OSError as exc:
            self.error = exc
            return
        self.storage.adopt(self.flows, self.data)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.job.result().abort()


class _RejectedError(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response
