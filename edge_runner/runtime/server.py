"""Standalone mode: one aiohttp server on one port for the Admin API, ``/comms`` and the
routes of ``http in`` nodes (ENGINE_CONTRACT.md).

Startup: the deployer loads ``<data dir>/flows.json`` (an unusable file is kept aside and the
runner starts with no flows) and starts it, or not in safe mode (``runtime.deployer``), then
listen; ``GET /flows`` answering 200 means ready. Stop (SIGTERM
or SIGINT): close ``/comms`` clients, stop every node, close the listener, within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
from collections.abc import Iterable
from typing import TYPE_CHECKING

from edge_runner.contract import new_msgid
from edge_runner.runtime.admin_api import AdminApi
from edge_runner.runtime.admin_guard import AdminGuard
from edge_runner.runtime.comms import CommsHub
from edge_runner.runtime.context_file import FLUSH_INTERVAL as CONTEXT_FLUSH_INTERVAL
from edge_runner.runtime.deployer import Deployer
from edge_runner.runtime.http_routes import handle_request, router_for
from edge_runner.runtime.paths import RunnerPaths
from edge_runner.runtime.storage import FlowStorage, StorageError, atomic_write

if TYPE_CHECKING:
    from aiohttp import web

    from edge_runner.runtime.engine import Engine

log = logging.getLogger("edge_runner.server")

MAX_ADMIN_BODY = 32 * 1024 * 1024  # a flows.json of tens of thousands of nodes still fits
STOP_TIMEOUT_S = 8.0
SECRET_ENV = "EDGE_RUNNER_CREDENTIAL_SECRET"  # noqa: S105  (a variable name, not a secret)


def credential_secret(paths: RunnerPaths, given: str | None = None) -> str:
    """The secret that encrypts ``flows_cred.json``: ``given``, else $EDGE_RUNNER_CREDENTIAL_SECRET,
    else the one generated on first start and kept in ``<data dir>/.config.runtime.json``
    (Node-RED keeps its generated ``_credentialSecret`` there too)."""
    if given:
        return given
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env
    path = paths.runtime_config
    try:
        doc = json.loads(path.read_text("utf-8"))
        if isinstance(doc, dict) and isinstance(doc.get("_credentialSecret"), str):
            return str(doc["_credentialSecret"])
        raise ValueError("no _credentialSecret")
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        # Generating a new secret would silently orphan the stored credentials.
        raise StorageError(f"{path} is unusable ({exc}); fix it or pass the secret") from exc
    secret = secrets.token_hex(32)
    paths.root.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"_credentialSecret": secret}).encode())
    return secret


def build_engine(
    paths: RunnerPaths,
    secret: str | None,
    context_flush_interval: float = CONTEXT_FLUSH_INTERVAL,
) -> Engine:
    """The engine with the data directory's stores: memory context by default plus a ``file``
    context store in ``<data dir>/context`` (flushed ``context_flush_interval`` seconds after a
    write, and at stop), and encrypted credentials in ``flows_cred.json``."""
    from edge_runner.runtime.context import ContextStore, ContextStores
    from edge_runner.runtime.context_file import FileContextStore
    from edge_runner.runtime.credentials import CredentialStore
    from edge_runner.runtime.engine import Engine

    stores = ContextStores(
        {
            "default": ContextStore(),
            "memory": ContextStore(),
            "file": FileContextStore(paths.context, context_flush_interval),
        }
    )
    credentials = CredentialStore(paths.credentials, credential_secret(paths, secret))
    return Engine(context=stores, credentials=credentials, paths=paths)


class Server:
    """The runner in standalone mode: engine + storage + Admin API + /comms + http in routes.

    The Admin API and ``/comms`` pass the :class:`AdminGuard` (Host, Origin, content type and,
    with ``admin_token``, a Bearer token); without a token only a loopback ``host`` is accepted
    (:class:`~edge_runner.runtime.admin_guard.AdminGuardError` otherwise)."""

    def __init__(
        self,
        host: str,
        port: int,
        paths: RunnerPaths,
        credential_secret: str | None = None,
        engine: Engine | None = None,
        admin_token: str | None = None,
        allowed_hosts: Iterable[str] = (),
        context_flush_interval: float = CONTEXT_FLUSH_INTERVAL,
    ) -> None:
        self.guard = AdminGuard.build(host, admin_token, allowed_hosts)
        self.host = host
        self.port = port
        self.paths = paths
        self.secret = credential_secret
        self.context_flush_interval = context_flush_interval
        self.storage = FlowStorage(paths.root)
        self.hub = CommsHub()
        self._engine = engine
        self._runner: web.AppRunner | None = None
        self.api: AdminApi | None = None
        self.deployer: Deployer | None = None
        self.app: web.Application | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("server not started")
        return self._engine

    async def start(self) -> None:
        from aiohttp import web

        self.paths.root.mkdir(parents=True, exist_ok=True)
        for old, new in self.paths.adopt_legacy_layout():
            log.warning("moved %s to %s (the data directory's layout)", old, new)
        # Finish an interrupted commit before anything reads the credential file.
        self.storage.recover()
        if self._engine is None:
            self._engine = build_engine(self.paths, self.secret, self.context_flush_interval)
        engine = self._engine
        engine.subscribe(self.hub.on_engine_event)
        self.deployer = Deployer(engine, self.storage)
        await self.deployer.boot()
        api = self.api = AdminApi(self.deployer)
        app = web.Application(client_max_size=MAX_ADMIN_BODY, middlewares=[self.guard.middleware()])
        api.add_routes(app)
        app.router.add_get("/comms", self.hub.handle)
        router = router_for(engine)

        async def http_node(request: web.Request) -> web.StreamResponse:
            response: web.StreamResponse = await handle_request(router, request, new_msgid)
            return response

        app.router.add_route("*", "/{tail:.*}", http_node)
        self.app = app
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True, backlog=1024)
        await site.start()
        self._runner = runner
        engine.warm_up()  # node modules load in the background, after we answer
        if not self.port:  # port 0: the OS picked one (tests)
            self.port = int(runner.addresses[0][1])
        log.info("edge runner on http://%s:%s (data dir %s)", self.host, self.port, self.paths.root)

    async def stop(self) -> None:
        """Graceful stop; every step is bounded so SIGTERM ends the process in seconds."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.hub.close(), 2.0)
        if self._engine is not None:
            try:
                await asyncio.wait_for(self._engine.stop(), STOP_TIMEOUT_S)
            except Exception:
                log.exception("engine did not stop cleanly")
            else:
                if self.deployer is not None and self.deployer.state.state != "safe":
                    self.deployer.stopped()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._runner.cleanup(), 3.0)
            self._runner = None


async def serve(server: Server) -> None:
    """Run until SIGTERM/SIGINT; the stop flushes the context stores."""
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.stop()


def run(server: Server, loop: str = "auto") -> None:
    """Blocking entry point; ``loop`` is ``auto`` (uvloop when installed), ``uvloop`` or
    ``asyncio``."""
    if loop in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            uvloop.run(serve(server))
            return
    asyncio.run(serve(server))
