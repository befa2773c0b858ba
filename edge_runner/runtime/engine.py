"""The flow engine: runs a Node-RED flows.json array with Node-RED's semantics.

Dispatch: a message sent to a node whose ``on_message`` is a plain method is handled by calling
it directly (no event-loop turn per hop), up to ``MAX_DEPTH`` nested hops; deeper chains and
loops continue from a ready-queue drained on the next loop turn, so a wire loop cannot blow the
stack and cannot starve the loop. Async nodes get their own bounded queue and worker task
(``Node.QUEUE_LIMIT``, oldest message dropped with a warning when full).

Deploys are two phases: ``prepare`` (parse, build every node that restarts, start nothing; a
rejected deploy raises ``DeployError`` with one entry per offending node and the running flows
are left untouched) and ``apply`` (stop what changes, start the new nodes, report the ones that
failed to start). ``runtime.deployer`` persists flows and credentials between the two and is
the one deploy path of a runner; ``deploy(flows, kind)`` runs both for engines without storage
(tests, the flow harness). Node code is contained (``containment``): ``sys.exit()`` in a node
fails that node, never the engine. See ``planner`` for what ``full`` / ``flows`` / ``nodes``
restart, ``flows`` for the flow model (subflows, groups), ``env`` for environment variables and
``routing`` for catch / status / complete delivery. Node modules are imported per type on
first use (``loader``). Flows using a type nobody registers (a contrib node) are accepted but
not started, as Node-RED does: ``Prepared.missing_types`` lists them, ``apply`` stops every
node, starts none and announces ``notification/runtime-state`` with ``error: missing-types``.

Directories: ``paths`` (``RunnerPaths``, the one data-directory layout). An engine built without
one has no directories at all: a node asking for one fails with ``NoRunnerPathsError``.

Per-instance services (STYLE rule 12): ``services`` holds this engine's connection pools,
``http in`` route table and function watchdog; ``nodes`` is its registry of running nodes. Nodes
see only the contract's ``NodeApi`` (``node_api.NodeRuntime``), never the engine, so two engines
in one process share nothing live (``tests/edge_runner/test_two_engines.py``).

Events (``subscribe``): ``debug`` (node warnings/errors and debug output), ``status/<id>``,
``notification/runtime-state`` and ``notification/runtime-deploy`` like Node-RED's /comms.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge_runner.contract import (
    COMMON_KEYS,
    REGISTRY,
    Msg,
    Node,
    NodeStatus,
    Registry,
    unknown_fields,
)
from edge_runner.runtime.containment import describe_failure, is_node_failure
from edge_runner.runtime.context import Context, ContextStore, ContextStores
from edge_runner.runtime.credentials import (
    CredentialStore,
    merge_env_credentials,
    merge_node_credentials,
)
from edge_runner.runtime.env import GlobalEnv
from edge_runner.runtime.flows import SUBFLOW_PREFIX, FlowModel, NodeDef, parse_flows, resolve_wires
from edge_runner.runtime.loader import (  # noqa: F401  # re-exported for callers
    FAILED_NODE_MODULES,
    WarmUp,
    load_node_modules,
    node_class,
    unavailable_reason,
)
from edge_runner.runtime.node_api import NodeRuntime
from edge_runner.runtime.paths import NoRunnerPathsError, RunnerPaths
from edge_runner.runtime.planner import DEPLOY_KINDS, Plan, plan_deploy
from edge_runner.runtime.routing import Router
from edge_runner.runtime.services import EngineServices

if TYPE_CHECKING:
    from pathlib import Path

    from edge_runner.contract import NodeConfig

log = logging.getLogger("edge_runner.engine")

MAX_DEPTH = 64
# Messages waiting for the next loop turn once a synchronous chain is MAX_DEPTH deep. A wire
# loop that fans out grows this without bound, so past the limit new messages are dropped
# (newest first, a warning per 1000 drops): bounded memory over completeness.
READY_LIMIT = 200_000
# A wire loop that fans out (a node wired twice to itself) doubles its work at every hop, so
# within one loop turn, once a burst has made BURST_LIMIT deliveries, chains deeper than
# SHALLOW_DEPTH also continue on a later turn (and each turn drains at most BURST_LIMIT).
# Generators (a body sending 200 000 messages into a chain) only meet the rule for chains
# deeper than SHALLOW_DEPTH hops, and then queue like Node-RED would, up to READY_LIMIT.
SHALLOW_DEPTH = 12
BURST_LIMIT = 50_000
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

EventListener = Callable[[str, Any], None]

# Array items that are structure, not node types a module provides.
NOT_NODE_TYPES = frozenset({"tab", "subflow", "group", "global-config"})
MISSING_TYPES_TEXT = "Waiting for missing types to be registered:"


def missing_types_event(types: list[str]) -> dict[str, Any]:
    """Node-RED's ``runtime-state`` payload while flows wait for missing types."""
    return {
        "state": "stop",
        "error": "missing-types",
        "type": "warning",
        "text": "notification.warnings.missing-types",
        "types": list(types),
    }


@dataclass
class DeployError(Exception):
    """A deploy was rejected; ``errors`` lists ``{"id", "type", "error"}`` per offending node."""

    errors: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{e.get('id')}: {e.get('error')}" for e in self.errors[:10])


@dataclass
class Prepared:
    """A validated deploy, built but not running yet (``Engine.prepare``)."""

    flows: list[Any]  # as stored: credentials stripped
    revision: str
    model: FlowModel
    plan: Plan
    built: dict[str, NodeRuntime]
    future: dict[str, NodeRuntime | None]
    wiring: dict[str, list[list[NodeRuntime]]]
    credentials: dict[str, dict[str, Any]]  # the credential set after this deploy
    credentials_changed: bool
    missing_types: list[str] = field(default_factory=list)  # nothing starts while non-empty


def strip_credentials(node: Any) -> Any:
    """A node as stored: credentials travel with a deploy but are kept apart, encrypted."""
    if isinstance(node, dict) and "credentials" in node:
        return {k: v for k, v in node.items() if k != "credentials"}
    return node


def node_config_fields(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in COMMON_KEYS}


def flows_revision(flows: Any) -> str:
    """Node-RED's ``rev``: SHA-256 of the flows' JSON text."""
    text = json.dumps(flows, separators=(",", ":"), ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


class Engine(Router):
    """Runs one flows.json configuration. Create inside or outside a loop; deploy inside one."""

    def __init__(
        self,
        registry: Registry | None = None,
        context: ContextStore | ContextStores | None = None,
        env: dict[str, Any] | None = None,
        credentials: CredentialStore | None = None,
        paths: RunnerPaths | None = None,
    ) -> None:
        self._paths = paths
        # Node modules load lazily, per type, at the first deploy that uses them (loader.py).
        self.registry = registry if registry is not None else REGISTRY
        self._warm_up = WarmUp(may_freeze=lambda: not self.nodes)
        if isinstance(context, ContextStores):
            self.context_stores = context
        else:
            self.context_stores = ContextStores({"default": context or ContextStore()})
        self.context = self.context_stores.default
        self.global_context = Context(self.context, "global", self.context_stores)
        self.credentials = credentials or CredentialStore()
        self.base_env: dict[str, Any] = dict(env or {})
        self.global_env = GlobalEnv(self.base_env)
        self.flows: list[dict[str, Any]] = []  # as deployed, credentials stripped
        self.revision = flows_revision([])
        self.model = FlowModel()
        self.nodes: dict[str, NodeRuntime] = {}
        self.tabs: dict[str, dict[str, Any]] = {}
        self.listeners: list[EventListener] = []
        self.state = "stop"
        self._depth = 0
        self._ready: deque[tuple[NodeRuntime, Msg]] = deque()
        self._drain_scheduled = False
        self.ready_dropped = 0
        self._burst = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deploy_lock: asyncio.Lock | None = None
        self._secrets: set[str] = set()
        self._unknown_logged: set[tuple[str, str]] = set()
        self._flow_contexts: dict[str, Context] = {}
        self.started_at = time.time()
        # this engine's connection pools, route table and watchdog: never shared with another
        self.services = EngineServices()
        Router.__init__(self)

    # ------------------------------------------------------------------ directories
    @property
    def paths(self) -> RunnerPaths:
        """The runner's data-directory layout; ``NoRunnerPathsError`` when built without one."""
        if self._paths is None:
            raise NoRunnerPathsError(
                "this engine has no data directory (built without RunnerPaths); "
                "nodes that keep files need the runner's --data-dir"
            )
        return self._paths

    @property
    def data_dir(self) -> Path:
        """Where file nodes keep their files (``<root>/data``), created on demand."""
        return self.paths.ensure(self.paths.node_data)

    # ------------------------------------------------------------------ events
    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener) if listener in self.listeners else None

    def emit(self, topic: str, data: Any) -> None:
        for listener in list(self.listeners):
            try:
                listener(topic, data)
            except Exception:  # a broken listener must not break message flow
                log.exception("event listener failed for %s", topic)

    def redact(self, text: str) -> str:
        """Credentials never leave through logs, status or debug output."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    # ------------------------------------------------------------------ context / env
    def flow_context(self, flow_id: str) -> Context:
        """The flow context of a tab or subflow instance; a subflow instance's has the flow
        containing the instance as its ``$parent``."""
        found = self._flow_contexts.get(flow_id)
        if found is None:
            parent = None
            instance = self.model.nodes.get(flow_id) if flow_id in self.model.instances else None
            if instance is not None and instance.z != flow_id:
                parent = self.flow_context(instance.z)
            found = Context(self.context, f"flow:{flow_id}", self.context_stores, parent)
            self._flow_contexts[flow_id] = found
        return found

    def env(self, tab_id: str, name: str) -> Any:
        scope = self.model.tab_env.get(tab_id) or self.model.global_env or self.global_env
        return scope.get(name)

    # ------------------------------------------------------------------ dispatch
    def deliver(self, target: NodeRuntime, msg: Msg) -> None:
        if not target.started:
            return
        if target.is_async:
            target.enqueue(msg)
            return
        depth = self._depth
        if depth == 0:  # a new burst: a timer, a request, an inject (drains run at depth 1)
            self._burst = 0
        self._burst += 1
        if depth >= MAX_DEPTH or (depth >= SHALLOW_DEPTH and self._burst > BURST_LIMIT):
            if len(self._ready) >= READY_LIMIT:
                self.ready_dropped += 1
                if self.ready_dropped % 1000 == 1:
                    target.warn(
                        f"engine ready queue full ({READY_LIMIT}); dropped "
                        f"{self.ready_dropped} message(s) (wire loop?)"
                    )
                return
            self._ready.append((target, msg))
            self._schedule_drain()
            return
        self._depth = depth + 1
        try:
            target.node.on_message(msg)
        except Exception as exc:  # a node that raises never stops the engine
            target.error(exc, msg)
        except BaseException as exc:  # sys.exit() in node code neither
            if not is_node_failure(exc):
                raise
            target.error(describe_failure(exc), msg)
        else:
            if target.watched and not target.manual_done:
                self.completed(target, msg)
        finally:
            self._depth -= 1

    def _schedule_drain(self) -> None:
        if self._drain_scheduled:
            return
        self._drain_scheduled = True
        loop = self._loop or asyncio.get_running_loop()
        loop.call_soon(self._drain)

    def _drain(self) -> None:
        """One loop turn's share of deferred messages, bounded by BURST_LIMIT deliveries."""
        self._drain_scheduled = False
        ready = self._ready
        saved, self._depth = self._depth, 1
        self._burst = 0
        try:
            while ready and self._burst < BURST_LIMIT:
                target, msg = ready.popleft()
                self.deliver(target, msg)
        finally:
            self._depth = saved
            self._burst = 0
        if ready:
            self._schedule_drain()

    # ------------------------------------------------------------------ build
    def _build_node(
        self, definition: NodeDef, errors: list[dict[str, Any]], creds: dict[str, dict[str, Any]]
    ) -> NodeRuntime | None:
        raw = definition.raw
        cls = self.node_class(raw["type"])
        if cls is None:
            errors.append(
                {"id": raw["id"], "type": raw["type"], "error": unavailable_reason(raw["type"])}
            )
            return None
        fields = node_config_fields(raw)
        if raw["type"].startswith(SUBFLOW_PREFIX):
            fields = {"name": str(raw.get("name") or "")}
        from pydantic import ValidationError  # loaded with the node modules already

        migrate = getattr(cls, "migrate", None)
        try:
            if callable(migrate):
                fields = migrate(fields)
            config = cls.Config.model_validate(fields)
            self._note_unknown_fields(raw["type"], cls, fields)
        except ValidationError as exc:
            found = [
                {"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()
            ]
            problems = "; ".join(f"{f['path'] or 'config'}: {f['message']}" for f in found)
            errors.append(
                {"id": raw["id"], "type": raw["type"], "error": problems, "fields": found}
            )
            return None
        except (ValueError, TypeError) as exc:
            errors.append({"id": raw["id"], "type": raw["type"], "error": str(exc)})
            return None
        try:
            rt = NodeRuntime(self, raw, config, cls, defn=definition)
        except BaseException as exc:  # the constructor rejected the config
            if not is_node_failure(exc):
                raise
            text = str(exc) if isinstance(exc, Exception) and str(exc) else repr(exc)
            errors.append({"id": raw["id"], "type": raw["type"], "error": text})
            return None
        rt.credentials = dict(creds.get(raw["id"]) or creds.get(definition.alias) or {})
        return rt

    def _note_unknown_fields(self, node_type: str, cls: type[Node], fields: dict[str, Any]) -> None:
        """Fields another Node-RED version wrote are kept in the flows and ignored; say so once
        per type and field, not per node and deploy."""
        for name in unknown_fields(cls.Config, fields):
            if (node_type, name) not in self._unknown_logged:
                self._unknown_logged.add((node_type, name))
                log.debug("%s: ignoring unknown field %r (kept in the flows)", node_type, name)

    # ------------------------------------------------------------------ lifecycle
    @property
    def deploy_lock(self) -> asyncio.Lock:
        """Held from ``prepare`` to the end of ``apply`` by whoever deploys."""
        if self._deploy_lock is None:
            self._deploy_lock = asyncio.Lock()
        return self._deploy_lock

    async def deploy(
        self, flows: list[Any], kind: str = "full", revision: str | None = None
    ) -> str:
        """Validate ``flows`` and run them; returns the new revision. The credentials are
        saved when they changed (``runtime.deployer`` persists flows and credentials together
        instead, between ``prepare`` and ``apply``).

        Raises ``DeployError`` (per-node errors) without touching the running flows when the
        configuration is rejected."""
        async with self.deploy_lock:
            prepared = self.prepare(flows, kind, revision)
            if prepared.credentials_changed:
                try:
                    self.credentials.save(prepared.credentials)
                except OSError as exc:
                    log.error("credentials could not be saved: %s", exc)
            await self.apply(prepared)
            return prepared.revision

    def prepare(self, flows: Any, kind: str = "full", revision: str | None = None) -> Prepared:
        """Phase one of a deploy, a dry run: parse ``flows``, merge the credentials they carry,
        build (construct, not start) every node that would restart. Nothing running changes
        and no node is started; raises ``DeployError`` listing every problem found."""
        if kind not in DEPLOY_KINDS:
            raise DeployError(
                [{"id": None, "type": None, "error": f"unknown deployment type {kind!r}"}]
            )
        scratch, env_creds_changed = merge_env_credentials(self.credentials, flows)
        model = parse_flows(flows, self.global_env, scratch.creds)
        missing = self.missing_types(flows, model)
        if missing:
            kind = "full"  # nothing will run: every node of the next deploy starts afresh
        errors = list(model.errors)
        if errors and not isinstance(flows, list):
            raise DeployError(errors)
        new_creds, creds_changed = merge_node_credentials(scratch, model, self.node_class)
        creds_changed |= env_creds_changed
        if creds_changed and self.credentials.path is not None and not self.credentials.secret:
            errors.append(
                {
                    "id": None,
                    "type": None,
                    "error": "credentials given but no credential secret is configured",
                }
            )
        old_defs = {i: rt.defn for i, rt in self.nodes.items() if rt.defn is not None}
        plan = plan_deploy(
            kind, old_defs, model, self.credentials.creds, new_creds, self._is_config_type
        )
        built: dict[str, NodeRuntime] = {}
        for node_id in sorted(plan.restart):
            if model.nodes[node_id].type in missing:
                continue
            rt = self._build_node(model.nodes[node_id], errors, new_creds)
            if rt is not None:
                built[node_id] = rt
        future = {i: built.get(i) or self.nodes.get(i) for i in model.nodes}
        wiring = resolve_wires(model, future, errors)
        if errors:
            raise DeployError(errors)
        stripped = [strip_credentials(n) for n in flows]
        return Prepared(
            flows=stripped,
            revision=revision or flows_revision(stripped),
            model=model,
            plan=plan,
            built=built,
            future=future,
            wiring=wiring,
            credentials=new_creds,
            credentials_changed=creds_changed,
            missing_types=missing,
        )

    def missing_types(self, flows: Any, model: FlowModel) -> list[str]:
        """The node types of ``flows`` no module provides, in order of first use. Like
        Node-RED's, disabled nodes count: the flows wait for every type they mention."""
        missing: list[str] = []
        for raw in flows if isinstance(flows, list) else ():
            kind = raw.get("type") if isinstance(raw, dict) else None
            if not isinstance(kind, str) or kind in missing or kind in NOT_NODE_TYPES:
                continue
            if kind.startswith(SUBFLOW_PREFIX):
                if kind[len(SUBFLOW_PREFIX) :] not in model.subflows:
                    missing.append(kind)
            elif self.node_class(kind) is None:
                missing.append(kind)
        return missing

    async def apply(
        self, prepared: Prepared, before_start: Callable[[], Awaitable[None]] | None = None
    ) -> list[dict[str, Any]]:
        """Phase two: stop what changes, switch to the prepared configuration, start the new
        nodes. ``before_start`` runs once the old nodes stopped and before any new one starts.
        Returns the nodes that failed to start (``{"id", "type", "error"}``): they are red and
        receive nothing, the rest runs (Node-RED keeps such a deploy too)."""
        self._loop = asyncio.get_running_loop()
        if prepared.missing_types:
            await self._wait_for_types(prepared, before_start)
            return []
        model, plan, future = prepared.model, prepared.plan, prepared.future
        self.emit("notification/runtime-state", {"state": "stop", "deploy": True})
        await self.stop_nodes([self.nodes[i] for i in plan.stop if i in self.nodes])
        self.nodes = {i: rt for i, rt in future.items() if rt is not None}
        for node_id, wires in prepared.wiring.items():
            if node_id in self.nodes:
                self.nodes[node_id].wires = wires
        for rt in self.nodes.values():
            if rt.id in model.nodes:
                rt.defn = model.nodes[rt.id]
        self.model = model
        self.tabs = model.tabs
        self.flows = prepared.flows
        self.revision = prepared.revision
        self.credentials.creds = prepared.credentials
        self._secrets = self.credentials.secrets()
        self.context_stores.clean(self._active_context_keys())
        # rebuilt on demand: parents follow the new model, data follows the cleaned stores
        self._flow_contexts = {}
        self.reindex()
        if before_start is not None:
            await before_start()
        self.state = "start"
        self.emit("notification/runtime-state", {"state": "start", "deploy": True})
        failures = await self.start_nodes([prepared.built[i] for i in sorted(prepared.built)])
        self.emit("notification/runtime-deploy", {"revision": self.revision})
        return failures

    async def _wait_for_types(
        self, prepared: Prepared, before_start: Callable[[], Awaitable[None]] | None
    ) -> None:
        """Node-RED's answer to flows with missing types: keep them, run none of them (no node
        context is cleaned either: the flows are not running, not gone)."""
        self.emit("notification/runtime-state", {"state": "stop", "deploy": True})
        await self.stop_nodes(list(self.nodes.values()))
        self.nodes = {}
        self.model = prepared.model
        self.tabs = prepared.model.tabs
        self.flows = prepared.flows
        self.revision = prepared.revision
        self.credentials.creds = prepared.credentials
        self._secrets = self.credentials.secrets()
        self._flow_contexts = {}
        self.reindex()
        if before_start is not None:
            await before_start()
        self.state = "stop"
        log.info("%s", MISSING_TYPES_TEXT)
        for missing in prepared.missing_types:
            log.info(" - %s", missing)
        self.emit("notification/runtime-state", missing_types_event(prepared.missing_types))
        self.emit("notification/runtime-deploy", {"revision": self.revision})

    def node_class(self, node_type: str) -> type[Node] | None:
        """The class running ``node_type`` (its module is imported on first use)."""
        if node_type.startswith(SUBFLOW_PREFIX):
            node_type = "subflow"
        return node_class(self.registry, node_type)

    def warm_up(self, delay: float = 0.25) -> None:
        """Import the node modules of every known type in the background (needs a running
        loop); cancelled by ``stop()``."""
        self._warm_up.start(delay)

    def _is_config_type(self, node_type: str) -> bool:
        cls = self.node_class(node_type)
        return cls is None or cls.SPEC.is_config

    def _active_context_keys(self) -> set[str]:
        keys = {"global"}
        for rt in self.nodes.values():
            keys.add(f"node:{rt.id}")
            keys.add(f"flow:{rt.z}")
        keys.update(f"flow:{t}" for t in self.model.tabs)
        return keys

    async def start_nodes(self, nodes: list[NodeRuntime]) -> list[dict[str, Any]]:
        """Start config nodes first, then the rest; a node that fails to start goes red and
        receives nothing, the others start normally. Returns the failures."""
        self._loop = asyncio.get_running_loop()
        ordered = sorted(nodes, key=lambda rt: 0 if rt.node_cls.SPEC.is_config else 1)
        failures: list[dict[str, Any]] = []
        for rt in ordered:
            rt.started = True
        self.nodes_starting = True
        try:
            await self._start_each(ordered, failures)
        finally:
            self.nodes_starting = False
        return failures

    async def _start_each(self, ordered: list[NodeRuntime], failures: list[dict[str, Any]]) -> None:
        for rt in ordered:
            if type(rt.node).start is Node.start:
                continue
            try:
                async with asyncio.timeout(START_TIMEOUT):
                    await rt.node.start()
            except BaseException as exc:
                if not is_node_failure(exc):
                    raise
                if isinstance(exc, Exception):
                    text = str(exc) or (
                        f"no answer within {START_TIMEOUT:g} s"
                        if isinstance(exc, TimeoutError)
                        else type(exc).__name__
                    )
                else:
                    text = describe_failure(exc)
                rt.started = rt.node_cls.SPEC.is_config
                rt.error(f"failed to start: {text}")
                rt.status(NodeStatus("red", "ring", text[:60]))
                failures.append({"id": rt.id, "type": rt.type, "error": text})

    async def stop_nodes(self, nodes: list[NodeRuntime]) -> None:
        """Stop nodes (flow nodes before config nodes); each stop is bounded by STOP_TIMEOUT."""
        for rt in nodes:
            rt.started = False
        ordered = sorted(nodes, key=lambda rt: 1 if rt.node_cls.SPEC.is_config else 0)
        for rt in ordered:
            if rt.worker is not None and not rt.worker.done():
                rt.worker.cancel()
            rt.queue.clear()
            if type(rt.node).stop is not Node.stop:
                try:
                    async with asyncio.timeout(STOP_TIMEOUT):
                        await rt.node.stop()
                except BaseException as exc:
                    if not is_node_failure(exc):
                        raise
                    log.exception("node %s (%s) failed to stop cleanly", rt.id, rt.type)
            if rt.last_status is not None and rt.last_status.as_dict():
                self.emit(f"status/{rt.id}", {})
            rt.last_status = None

    async def stop(self) -> None:
        """Stop every node, flush the context stores and close this engine's services
        (connection pools, routes, watchdog) (shutdown). The stores are flushed even when
        stopping the nodes is cut short (a node hanging in its stop, cancelled by the server's
        stop timeout): what flows wrote before SIGTERM is kept."""
        self._warm_up.cancel()
        self.emit("notification/runtime-state", {"state": "stop"})
        try:
            await self.stop_nodes(list(self.nodes.values()))
        finally:
            self.nodes = {}
            self.state = "stop"
            self.reindex()
            await self.context_stores.close()  # first: flushing never waits
            await self.services.close()

    def node(self, node_id: str) -> Node | None:
        rt = self.nodes.get(node_id)
        return rt.node if rt else None


def config_of(node: Node) -> NodeConfig:
    return node.config
