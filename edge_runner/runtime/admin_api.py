"""The Node-RED Admin API subset of ENGINE_CONTRACT.md §2: ``GET/POST /flows``,
``GET /flows/state`` and ``POST /inject/:id``.

``POST /flows`` is a thin caller of ``runtime.deployer`` (the one deploy path) and maps its
``DeployResult``: ``accepted`` and ``started_with_failures`` answer success (Node-RED keeps a
deploy whose nodes fail to start; they show red per node, and the failures are also listed in
the v2 answer as ``failures``); ``waiting`` (flows using node types nobody provides, e.g.
contrib nodes) answers success too, as Node-RED does, and the v2 answer lists them as
``missing_types``: the flows are stored, nothing runs; ``rejected`` answers 400
``{"code": "invalid_flows", "message", "errors": [{"id", "type", "error"}]}`` and nothing
changed; a stale ``rev`` answers 409; flows that could not be stored answer 500
``storage_error`` and nothing changed.

``GET /flows/state`` answers ``{"state": "start" | "stop" | "safe"}`` like Node-RED 3, plus
``error: "safe-mode"`` and ``text`` (the reason) in safe mode, or ``error: "missing-types"``
and ``types`` while the flows wait for missing types (Node-RED's runtime-state event).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from edge_runner.lib.jsonbody import parse_json
from edge_runner.runtime.deployer import (
    Deployer,
    DeployStorageError,
    RevisionConflictError,
)

if TYPE_CHECKING:
    from aiohttp import web

    from edge_runner.runtime.engine import Engine
    from edge_runner.runtime.storage import FlowStorage

log = logging.getLogger("edge_runner.admin")

JSON_TYPE = "application/json"
DEPLOY_TYPES = ("full", "flows", "nodes", "reload")


class AdminApi:
    """Handlers for the Admin API; one instance per server."""

    def __init__(self, deployer: Deployer) -> None:
        self.deployer = deployer

    @property
    def engine(self) -> Engine:
        return self.deployer.engine

    @property
    def storage(self) -> FlowStorage:
        return self.deployer.storage

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/flows", self.get_flows)
        app.router.add_post("/flows", self.post_flows)
        app.router.add_get("/flows/state", self.get_state)
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
            flows = []  # the deployer restarts the stored flows
        if not isinstance(flows, list):
            return self._error(400, "unexpected_error", "flows must be a JSON array of nodes")
        try:
            result = await self.deployer.deploy(flows, kind, base_revision=rev)
        except RevisionConflictError:
            return self._error(409, "version_mismatch", "Error")
        except DeployStorageError as exc:
            return self._error(500, "storage_error", f"flows could not be written: {exc}")
        if result.status == "rejected":
            return self._error(
                400, "invalid_flows", f"deploy rejected: {result.message}", errors=result.errors
            )
        if not v2:
            from aiohttp import web

            return web.Response(status=204)
        doc: dict[str, Any] = {"rev": result.revision}
        if result.failures:
            doc["failures"] = result.failures
        if result.missing_types:
            doc["missing_types"] = result.missing_types
        return self._json(200, json.dumps(doc, ensure_ascii=False).encode())

    # ------------------------------------------------------------------ GET /flows/state
    async def get_state(self, request: web.Request) -> web.Response:
        doc = self.deployer.state.as_dict()
        return self._json(200, json.dumps(doc, ensure_ascii=False).encode())

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
