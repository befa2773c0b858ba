"""The one deploy path: validate -> persist atomically -> stop what changes -> start -> report.

Every caller goes through ``Deployer.deploy`` (the Admin API's ``POST /flows``, the platform
link, a rollback) and the runner's own start-up goes through ``Deployer.boot``; the way
Node-RED's ``setFlows`` is the one path whatever the source of a deploy.

1. **validate**: ``Engine.prepare`` parses the flows, merges the credentials they carry and
   builds every node that would restart, starting nothing. Any problem: ``rejected`` with one
   error per node, nothing stored, nothing running changed.
2. **persist**: flows and the new credential set are committed as one unit
   (``FlowStorage.commit``): a kill at any instant restarts with both old or both new.
3. **stop** the nodes the deploy replaces (by deployment type, ``planner``), then
4. **start** the new ones, between a durable ``.starting`` marker and its removal;
5. **report** a ``DeployResult``: ``accepted``, or ``started_with_failures`` listing the nodes
   that failed to start (red, receiving nothing; the rest runs, as in Node-RED), or
   ``waiting``: the flows use node types no module provides (``missing_types``, contrib nodes
   we lack); they are stored but nothing runs, as Node-RED's "Waiting for missing types to be
   registered". The state is then ``stop`` with ``error: missing-types``; the next deploy
   without such types starts normally.

Safe mode: a ``.starting`` marker found at boot means the last start never completed: the
runner died while starting nodes (``os._exit`` in node code, a native crash, the OOM killer).
The stored flows are then loaded but not started, ``state`` is ``safe`` with the reason (also
published on /comms as ``notification/runtime-state``), and the next deploy starts normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edge_runner.runtime.engine import MISSING_TYPES_TEXT, missing_types_event
from edge_runner.runtime.paths import CREDENTIALS_FILE
from edge_runner.runtime.storage import (
    FlowStorage,
    StorageError,
    revision,
    serialize_flows,
)

if TYPE_CHECKING:
    from edge_runner.runtime.engine import Engine, Prepared

log = logging.getLogger("edge_runner.deployer")

DeployStatus = Literal["accepted", "rejected", "started_with_failures", "waiting"]
RUNTIME_STATE_TOPIC = "notification/runtime-state"


@dataclass(frozen=True)
class DeployResult:
    """What a deploy did. ``errors``: per-node validation errors of a rejected deploy;
    ``failures``: per-node start failures (each ``{"id", "type", "error"}``);
    ``missing_types``: the node types a ``waiting`` deploy waits for."""

    status: DeployStatus
    revision: str | None
    errors: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    missing_types: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        if self.missing_types:
            return f"waiting for missing types: {', '.join(self.missing_types)}"
        problems = self.errors or self.failures
        listed = "; ".join(f"{p.get('id')}: {p.get('error')}" for p in problems[:10])
        return f"{self.status.replace('_', ' ')}: {listed}" if listed else self.status


@dataclass(frozen=True)
class RuntimeState:
    """``start`` (flows running), ``stop`` (none; ``missing_types`` when the flows wait for
    types) or ``safe`` (stored flows not started)."""

    state: Literal["start", "stop", "safe"]
    reason: str = ""
    missing_types: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        if self.state == "safe":
            # Node-RED's safe-mode event, with our reason as its text.
            return {"state": "safe", "error": "safe-mode", "type": "warning", "text": self.reason}
        if self.missing_types:
            return missing_types_event(list(self.missing_types))
        return {"state": self.state}


class RevisionConflictError(Exception):
    """The deploy named a base revision that is no longer the stored one."""


class DeployStorageError(Exception):
    """The deploy was valid but could not be stored; nothing changed."""


class Deployer:
    """Deploys flows into one engine and one storage; one instance per runner."""

    def __init__(self, engine: Engine, storage: FlowStorage) -> None:
        path = engine.credentials.path
        if path is not None and path != storage.userdir / CREDENTIALS_FILE:
            # The unit commits the credential file beside the flows; another one would drift.
            raise ValueError(f"credentials at {path}, outside the flows' commit unit")
        self.engine = engine
        self.storage = storage
        self.state = RuntimeState("stop")

    # ------------------------------------------------------------------ start-up
    async def boot(self) -> DeployResult | None:
        """Load the stored flows (finishing or discarding an interrupted commit) and start
        them, unless the last start did not complete (safe mode). ``None``: nothing to start."""
        marker = self.storage.starting_marker()
        try:
            flows = self.storage.load()
        except StorageError as exc:
            log.error("starting with no flows: %s", exc)
            flows = []
        if marker is not None:
            reason = (
                f"the runner stopped while starting flows revision {marker.get('rev', '?')}; "
                "they were not started again (safe mode). Deploy to start flows."
            )
            log.error("%s", reason)
            self._set_state(RuntimeState("safe", reason))
            return None
        if not flows:
            self._set_state(RuntimeState("start"))
            return None
        result = await self._run(flows, "full", self.storage.rev, persist=False)
        if result.status == "rejected":
            # Keep the file as it is (the user may fix it from the editor); run nothing.
            log.error("stored flows rejected, running no flows: %s", result.message)
        return result

    def stopped(self) -> None:
        """The runner stopped gracefully: a start it interrupted did not kill it, so the next
        boot starts the flows normally."""
        self.storage.clear_starting()

    # ------------------------------------------------------------------ deploy
    async def deploy(
        self, flows: Any, kind: str = "full", *, base_revision: str | None = None
    ) -> DeployResult:
        """Deploy ``flows`` (credentials inline, Node-RED style); ``kind`` is ``full``,
        ``flows``, ``nodes`` or ``reload`` (restart the stored flows). ``base_revision``: the
        revision the caller edited; another one stored raises ``RevisionConflictError``. A
        storage failure raises ``DeployStorageError`` (nothing changed)."""
        async with self.engine.deploy_lock:
            if base_revision is not None and base_revision != self.storage.rev:
                raise RevisionConflictError(base_revision)
            if kind == "reload":
                return await self._run(self.storage.flows, "full", self.storage.rev, persist=False)
            if self.state.state == "safe":
                kind = "full"  # nothing runs: as in Node-RED, any deploy from safe mode is full
            return await self._run(flows, kind, None, persist=True)

    async def _run(self, flows: Any, kind: str, rev: str | None, *, persist: bool) -> DeployResult:
        from edge_runner.runtime.engine import DeployError, strip_credentials

        engine = self.engine
        staging: asyncio.Future[Path] | None = None
        if not isinstance(flows, list):
            error = {"id": None, "type": None, "error": "flows must be a JSON array"}
            return DeployResult("rejected", None, errors=[error])
        try:
            data = serialize_flows([strip_credentials(n) for n in flows])
        except (TypeError, ValueError) as exc:
            error = {"id": None, "type": None, "error": f"flows cannot be stored: {exc}"}
            return DeployResult("rejected", None, errors=[error])
        if persist:
            # The write (I/O, off the GIL) overlaps the validation (CPU).
            staging = asyncio.ensure_future(asyncio.to_thread(self.storage.stage, data))
        try:
            prepared = engine.prepare(flows, kind, rev or revision(data))
        except DeployError as exc:
            if staging is not None:
                await self._discard(staging)
            return DeployResult("rejected", None, errors=exc.errors)
        except BaseException:
            if staging is not None:
                await self._discard(staging)
            raise
        if staging is not None:
            await self._persist(prepared, data, staging)
        failures = await engine.apply(prepared, before_start=self._starting(prepared.revision))
        await asyncio.to_thread(self.storage.clear_starting)
        if prepared.missing_types:
            missing = prepared.missing_types
            self._set_state(RuntimeState("stop", MISSING_TYPES_TEXT, tuple(missing)))
            return DeployResult("waiting", prepared.revision, missing_types=list(missing))
        self._set_state(RuntimeState("start"))
        status: DeployStatus = "started_with_failures" if failures else "accepted"
        return DeployResult(status, prepared.revision, failures=failures)

    async def _discard(self, staging: asyncio.Future[Path]) -> None:
        with contextlib.suppress(OSError):
            self.storage.discard(await staging)

    async def _persist(
        self, prepared: Prepared, data: bytes, staging: asyncio.Future[Path]
    ) -> None:
        credentials = self.engine.credentials
        keeps_file = credentials.path is not None and prepared.credentials_changed

        def write(staged: Path) -> None:
            blob = credentials.encode(prepared.credentials) if keeps_file else None
            self.storage.commit(staged, prepared.flows, data, blob)

        try:
            staged = await staging
        except OSError as exc:
            log.error("deploy refused, flows could not be stored: %s", exc)
            raise DeployStorageError(str(exc)) from exc
        try:
            await asyncio.to_thread(write, staged)
        except OSError as exc:
            self.storage.discard(staged)
            log.error("deploy refused, flows could not be stored: %s", exc)
            raise DeployStorageError(str(exc)) from exc

    def _starting(self, rev: str) -> Callable[[], Awaitable[None]]:
        async def mark() -> None:
            await asyncio.to_thread(self.storage.mark_starting, rev)

        return mark

    def _set_state(self, state: RuntimeState) -> None:
        self.state = state
        if state.state == "safe":  # the engine announces start and stop itself
            self.engine.emit(RUNTIME_STATE_TOPIC, state.as_dict())
