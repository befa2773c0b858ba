"""Apply a target, check its health, roll back to the last good one (device-protocol.md,
"Applying a target", steps 3-5; RELIABILITY.md families 16 and 18).

``apply(manifest)`` installs the downloaded parts (``SnapshotStore.install``) when that has not
happened yet, records the target as being applied, deploys it through the engine's Admin API
and runs the health check (``health.check_health``). Pass: ``agent.json`` names it active and
last good. Fail: the last good generation is deployed again at once and the outcome is
``rolled_back`` with the reason (``failed`` when there is no last good one: then no flows run).
After a pass, the engine dying or wedging twice within 60 s rolls the target back as well (a
crash loop), reported through ``outcome_listeners``.

What a deploy contains:

* ``flows.json`` as installed;
* the credentials of ``credentials.sealed`` (opened with the device's X25519 key), as each
  node's ``credentials`` field (the engine commits flows and credentials as one unit);
* the models of its ``models/<sha256>.onnx`` parts, placed in the engine's model store
  (``SnapshotStore.place_models``) before the deploy; models no installed snapshot ships are
  removed after a successful apply;
* the ``env`` table of ``settings.json`` as one ``global-config`` node (id
  ``manifold-device-env``) put first: every flow sees the variables as Node-RED global
  environment variables, above the process environment; a ``global-config`` node of the flows
  themselves, and tab, group and node ``env`` lists, override them. Changing a variable is an
  ordinary deploy: no engine restart. The ``runner`` table is kept with the snapshot and not
  applied by this version.

``boot()`` runs at agent start, with or without the platform: an apply that a kill interrupted
is recorded as ``rolled_back`` (``interrupted``), and the engine is made to run the last good
generation (no flows when there is none).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from edge_runner.agent.engine_client import EngineClient, EngineError
from edge_runner.agent.health import EngineWatch, HealthSettings, check_health
from edge_runner.agent.store import Handled, SnapshotStore, StoreError
from edge_runner.agent.supervisor import START_TIMEOUT_S, Supervisor
from edge_runner.protocol.manifest import (
    CREDENTIALS_PART,
    FLOWS_PART,
    SETTINGS_PART,
    Manifest,
    ManifestError,
    unseal,
)

log = logging.getLogger("edge_runner.agent.apply")

CRASH_WINDOW_S = 60.0
CRASH_LIMIT = 2
ENV_NODE_ID = "manifold-device-env"
RUN_DEADLINE_S = 30.0
ANSWER_WITHIN_S = 1.0  # how long a rollback keeps trying to reach a restarting engine


class SealingIdentity(Protocol):
    """What the applier needs of the device identity (``agent.identity.Identity``)."""

    @property
    def device_id(self) -> str: ...

    @property
    def sealing_private_key(self) -> bytes: ...


@dataclass(frozen=True)
class ApplyOutcome:
    """What came of one target: ``outcome`` is ``applied``, ``failed``, ``rolled_back`` or
    ``refused``; ``active`` the generation running afterwards; ``rollback_seconds`` the time
    from the failed verdict to the last good generation deployed again."""

    generation: int
    outcome: str
    reason: str
    active: int | None
    rollback_seconds: float | None = None


@dataclass(frozen=True)
class Deployable:
    flows: list[Any]
    credentials: dict[str, dict[str, Any]]
    settings: dict[str, Any]


class Applier:
    """Applies targets to the engine one at a time and keeps ``agent.json`` true."""

    def __init__(
        self,
        store: SnapshotStore,
        engine_client: EngineClient,
        supervisor: Supervisor,
        identity: SealingIdentity,
        watch: EngineWatch | None = None,
    ) -> None:
        self.store = store
        self.client = engine_client
        self.supervisor = supervisor
        self.identity = identity
        self.watch = watch or EngineWatch()
        self.outcome_listeners: list[Callable[[ApplyOutcome], None]] = []
        self.deployed_flows: list[Any] = []
        self._lock = asyncio.Lock()
        self._crashes: list[float] = []
        self._watching: tuple[int, int | None, float] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        supervisor.crash_listeners.append(self._on_crash)

    # ------------------------------------------------------------------ apply
    async def apply(self, manifest: Manifest) -> ApplyOutcome:
        async with self._lock:
            return await self._apply(manifest)

    async def _apply(self, manifest: Manifest) -> ApplyOutcome:
        g = manifest.generation
        state = self.store.state
        if state.handled is not None and state.handled.generation == g:
            handled = state.handled
            return ApplyOutcome(
                g, handled.outcome, f"already handled: {handled.reason}", state.active
            )
        if g < state.min_generation:
            return ApplyOutcome(g, "refused", f"generation {g} is stale", state.active)
        try:
            await self.store.install(g, manifest.document)
            await asyncio.to_thread(self.store.place_models, g)
            deployable = self.load(g)
        except (StoreError, ManifestError) as exc:
            return self._failed_before_deploy(g, f"{getattr(exc, 'code', 'error')}: {exc}")
        previous = state.last_good
        self.store.record(
            active=g,
            handled=Handled(g, "applying"),
            min_generation=max(state.min_generation, g),
            names={**state.names, g: manifest.name},
        )
        restarts = self.supervisor.restarts
        try:
            result = await self._deploy(deployable)
        except EngineError as exc:
            result = {"status": "unreachable", "message": str(exc)}
        reason = await check_health(
            self.client,
            result,
            HealthSettings.from_settings(deployable.settings),
            lambda: self.supervisor.restarts,
        )
        if reason is None:
            self.store.record(active=g, last_good=g, handled=Handled(g, "applied"))
            self._crashes.clear()
            self._watching = (g, previous, time.monotonic())
            self._prune()
            log.info("generation %s applied", g)
            return ApplyOutcome(g, "applied", "", g)
        log.warning("generation %s failed its health check: %s", g, reason)
        return await self._roll_back(g, previous, reason, time.monotonic(), restarts)

    def _failed_before_deploy(self, g: int, reason: str) -> ApplyOutcome:
        state = self.store.state
        try:
            self.store.record(
                handled=Handled(g, "failed", reason),
                min_generation=max(state.min_generation, g),
            )
        except StoreError as exc:
            log.error("could not record the failed target %s: %s", g, exc)
        return ApplyOutcome(g, "failed", reason, state.active)

    async def _roll_back(
        self, g: int, previous: int | None, reason: str, verdict: float, restarts_before: int
    ) -> ApplyOutcome:
        if self.supervisor.restarts != restarts_before or not await self._answers():
            # The target kills or wedges the engine: start it without running those flows.
            await self.supervisor.restart_safe()
        if previous is None:
            await self._run(None)
            self.store.record(active=None, handled=Handled(g, "failed", reason))
            return ApplyOutcome(
                g, "failed", f"{reason}; no earlier target to roll back to: no flows run", None
            )
        ran = await self._run(previous)
        took = time.monotonic() - verdict
        self.store.record(
            active=previous, last_good=previous, handled=Handled(g, "rolled_back", reason)
        )
        if not ran:
            log.error("rollback to generation %s could not be deployed", previous)
        else:
            log.warning("rolled back to generation %s in %.2f s", previous, took)
        return ApplyOutcome(g, "rolled_back", reason, previous, took)

    # ------------------------------------------------------------------ boot
    async def boot(self) -> ApplyOutcome | None:
        """Make the engine run the last good generation (offline; at agent start). Starts the
        supervisor when it is not running yet: call it before ``Supervisor.start`` so that the
        flows of an interrupted apply are never started (the engine boots in safe mode)."""
        async with self._lock:
            state = self.store.state
            handled = state.handled
            target = state.last_good if state.last_good is not None else None
            interrupted = handled is not None and handled.outcome == "applying"
            if self.supervisor.process is None:
                await self.supervisor.start(safe=interrupted)
            elif interrupted:
                await self.supervisor.restart_safe()
            if handled is not None and interrupted:
                reason = "the apply was interrupted (agent restarted); rolled back"
                await self._run(target)
                outcome = "rolled_back" if target is not None else "failed"
                self.store.record(
                    active=target, handled=Handled(handled.generation, outcome, reason)
                )
                return ApplyOutcome(handled.generation, outcome, reason, target)
            if state.active != target:
                self.store.record(active=target)
            await self._run(target, skip_if_running=True)
            return None

    # ------------------------------------------------------------------ deploy
    def load(self, generation: int) -> Deployable:
        """The flows, credentials and settings of an installed generation, ready to deploy."""
        flows = _json_part(self.store.part(generation, FLOWS_PART), FLOWS_PART, list)
        settings = _json_part(
            self.store.part(generation, SETTINGS_PART) or b"{}", SETTINGS_PART, dict
        )
        sealed = self.store.part(generation, CREDENTIALS_PART)
        credentials: dict[str, dict[str, Any]] = {}
        if sealed is not None:
            opened = unseal(
                sealed,
                private_key=self.identity.sealing_private_key,
                device=self.identity.device_id,
            )
            raw = _json_part(opened, CREDENTIALS_PART, dict)
            credentials = {str(k): dict(v) for k, v in raw.items() if isinstance(v, dict)}
        env = settings.get("env")
        if isinstance(env, Mapping) and env:
            flows = [env_node(env), *flows]
        return Deployable(flows, credentials, settings)

    async def _deploy(self, deployable: Deployable) -> dict[str, Any]:
        if not await self.supervisor.wait_ready(START_TIMEOUT_S):
            raise EngineError("the engine is not running")
        result = await self.client.deploy(deployable.flows, deployable.credentials)
        self.deployed_flows = deployable.flows
        return result

    async def _run(self, generation: int | None, *, skip_if_running: bool = False) -> bool:
        """Deploy ``generation`` (``None``: no flows), retrying while the engine restarts."""
        try:
            if generation is not None:
                await asyncio.to_thread(self.store.place_models, generation)
            deployable = self.load(generation) if generation is not None else Deployable([], {}, {})
        except (StoreError, ManifestError, OSError) as exc:
            log.error("generation %s cannot be loaded: %s", generation, exc)
            return False
        deadline = time.monotonic() + RUN_DEADLINE_S
        while time.monotonic() < deadline:
            try:
                if skip_if_running and await self._running(deployable):
                    self.deployed_flows = deployable.flows
                    return True
                result = await self._deploy(deployable)
                if result["status"] != "rejected":
                    return True
                log.error("generation %s rejected: %s", generation, result.get("message"))
                return False
            except EngineError as exc:
                log.warning("deploy of generation %s: %s; retrying", generation, exc)
                await asyncio.sleep(0.1)
        return False

    async def _running(self, deployable: Deployable) -> bool:
        if not await self.supervisor.wait_ready(START_TIMEOUT_S):
            raise EngineError("the engine is not running")
        state = await self.client.state()
        return state.get("state") == "start" and await self.client.flows() == deployable.flows

    async def _answers(self) -> bool:
        """Whether the engine answers at once (not wedged, not restarting)."""
        try:
            await asyncio.wait_for(self.client.state(), ANSWER_WITHIN_S)
        except (EngineError, TimeoutError):
            return False
        return True

    def _prune(self) -> None:
        try:
            self.store.prune()
            self.store.prune_models()
            installed = set(self.store.installed())
            names = self.store.state.names
            if set(names) - installed:
                self.store.record(names={g: n for g, n in names.items() if g in installed})
        except (OSError, StoreError) as exc:
            log.warning("old snapshots could not be removed: %s", exc)

    # ------------------------------------------------------------------ crash loop
    def _on_crash(self, reason: str) -> None:
        self.watch.on_crash(reason)
        if self._watching is None or self._lock.locked():
            return
        g, previous, applied_at = self._watching
        now = time.monotonic()
        if now - applied_at > CRASH_WINDOW_S:
            self._watching = None
            return
        self._crashes.append(now)
        if len(self._crashes) >= CRASH_LIMIT:
            self._watching = None
            task = asyncio.get_running_loop().create_task(
                self._crash_loop(g, previous, f"crash loop: {reason}", now)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _crash_loop(self, g: int, previous: int | None, reason: str, verdict: float) -> None:
        async with self._lock:
            if self.store.state.active != g:
                return
            outcome = await self._roll_back(g, previous, reason, verdict, -1)
        for listener in self.outcome_listeners:
            try:
                listener(outcome)
            except Exception:
                log.exception("outcome listener failed")


def env_node(env: Mapping[str, Any]) -> dict[str, Any]:
    """The ``global-config`` node carrying the snapshot's environment variables."""
    entries = []
    for name, value in env.items():
        if isinstance(value, bool):
            entries.append({"name": str(name), "value": str(value).lower(), "type": "bool"})
        elif isinstance(value, (int, float)):
            entries.append({"name": str(name), "value": str(value), "type": "num"})
        elif isinstance(value, str):
            entries.append({"name": str(name), "value": value, "type": "str"})
        else:
            entries.append({"name": str(name), "value": json.dumps(value), "type": "json"})
    return {"id": ENV_NODE_ID, "type": "global-config", "env": entries}


def _json_part(raw: bytes | None, name: str, kind: type) -> Any:
    if raw is None:
        raise StoreError("incomplete", f"the snapshot has no {name}")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError("malformed", f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise StoreError("malformed", f"{name} must be a JSON {kind.__name__}")
    return value
