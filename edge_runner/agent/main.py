"""``edge-runner run``: the managed-mode agent, wired together.

The agent starts the engine as a supervised child (``Supervisor``), makes it run the last good
snapshot before anything else (``Applier.boot``: offline first), serves the read-only status
page on loopback, feeds the engine's debug and status events and its own log into the stream
buffer, and keeps the link to the platform (``LinkClient``). SIGTERM or SIGINT stop the link,
then the engine, and exit 0; a decommission does the same after the wipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
from typing import Any

from edge_runner.agent.identity import Identity
from edge_runner.agent.link import LinkClient, ResourceMeter
from edge_runner.agent.stream import StreamBuffer, StreamLogHandler
from edge_runner.runtime.paths import RunnerPaths

log = logging.getLogger(__name__)

DEFAULT_PORT = 1880
DEFAULT_STATUS_PORT = 1879


class Agent:
    """One device agent over the data directory ``paths`` (registered beforehand)."""

    def __init__(
        self,
        paths: RunnerPaths,
        *,
        port: int = DEFAULT_PORT,
        status_port: int = DEFAULT_STATUS_PORT,
        status_host: str = "127.0.0.1",
        memory_limit_bytes: int | None = None,
    ) -> None:
        self.paths = paths
        self.port = port
        self.status_port = status_port
        self.status_host = status_host
        self.memory_limit_bytes = memory_limit_bytes
        self.stopping = asyncio.Event()
        self.link: LinkClient | None = None

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> int:
        """Run until stopped or decommissioned; answers the process exit status."""
        from edge_runner.agent.apply import Applier
        from edge_runner.agent.status_page import StatusPage, device_status
        from edge_runner.agent.store import SnapshotStore
        from edge_runner.agent.supervisor import Supervisor

        identity = Identity.load(self.paths)
        supervisor = Supervisor(
            self.paths, self.port, self.paths.device_credential, self.memory_limit_bytes
        )
        engine = supervisor.client()
        store = SnapshotStore(self.paths)
        applier = Applier(store, engine, supervisor, identity)
        stream = StreamBuffer()

        def engine_facts() -> Mapping[str, Any]:
            nodes = [
                n
                for n in applier.deployed_flows
                if isinstance(n, dict) and n.get("type") not in ("tab", "subflow")
            ]
            red = sum(1 for s in applier.watch.statuses.values() if s.get("fill") == "red")
            return {
                "nodes": {"total": len(nodes), "error": red},
                "errors": list(applier.watch.errors),
            }

        def on_event(topic: str, data: Any) -> None:
            applier.watch.on_event(topic, data)
            stream.feed_comms(topic, data)

        link = self.link = LinkClient(
            identity,
            applier,
            engine,
            stream,
            paths=self.paths,
            store=store,
            resources=ResourceMeter(
                self.paths,
                memory_limit_bytes=self.memory_limit_bytes,
                engine_pid=lambda: supervisor.pid,
                engine_restarts=lambda: supervisor.restarts,
            ),
            on_decommission=supervisor.stop,
            engine_facts=engine_facts,
        )

        async def status() -> Mapping[str, Any]:
            state = "connected" if link.connected.is_set() else "offline"
            return await device_status(applier, link=state, device_name=identity.name)

        page = StatusPage(status)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        handler = StreamLogHandler(stream)
        logging.getLogger().addHandler(handler)
        background: list[asyncio.Task[Any]] = []
        try:
            await supervisor.start()
            await applier.boot()
            background.append(asyncio.ensure_future(engine.subscribe(on_event)))
            await page.start(self.status_host, self.status_port)
            background.append(asyncio.ensure_future(link.run()))
            ended = asyncio.ensure_future(link.wait_stopped())
            stopping = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait((ended, stopping), return_when=asyncio.FIRST_COMPLETED)
            for waiter in (ended, stopping):
                waiter.cancel()
            log.info("stopping (%s)", "decommissioned" if link.decommissioned else "signal")
        finally:
            await link.stop()
            for task in reversed(background):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await page.stop()
            await supervisor.stop()
            logging.getLogger().removeHandler(handler)
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        return 0
