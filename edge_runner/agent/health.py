"""The health check after an apply, and what the engine's event stream says about its nodes.

A deploy passes (device-protocol.md, "Applying a target", step 3) when, within
``health.timeout_seconds`` of the settings part (default 10):

* the deploy answered ``accepted`` (not ``started_with_failures``, ``waiting`` or ``rejected``),
* the engine reports ``state: start`` and did not restart during the check (which also lasts at
  least ``health.window_seconds``, default 2, so a flow crashing the engine at once is seen),
* the optional probe ``health.probe`` (``{"path": "/health", "status": 200}``) on the engine's
  own port answered the expected status.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from edge_runner.agent.engine_client import EngineClient, EngineError

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_WINDOW_S = 2.0
MAX_TIMEOUT_S = 300.0
PROBE_INTERVAL_S = 0.2
ERRORS_KEPT = 20
NODE_RED_ERROR_LEVEL = 20  # Node-RED log levels: fatal 10, error 20, warn 30


@dataclass(frozen=True)
class Probe:
    path: str
    status: int


@dataclass(frozen=True)
class HealthSettings:
    timeout_seconds: float = DEFAULT_TIMEOUT_S
    window_seconds: float = DEFAULT_WINDOW_S
    probe: Probe | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> HealthSettings:
        """From the ``health`` table of ``settings.json``; nonsense falls back to defaults
        (the platform validated it; the device must still run)."""
        raw = settings.get("health")
        if not isinstance(raw, Mapping):
            return cls()
        timeout = _seconds(raw.get("timeout_seconds"), DEFAULT_TIMEOUT_S)
        window = min(_seconds(raw.get("window_seconds"), DEFAULT_WINDOW_S), timeout)
        probe = None
        given = raw.get("probe")
        if isinstance(given, Mapping) and isinstance(given.get("path"), str):
            path = given["path"] if given["path"].startswith("/") else "/" + given["path"]
            status = given.get("status", 200)
            probe = Probe(path, status if isinstance(status, int) else 200)
        return cls(timeout, window, probe)


def _seconds(value: Any, default: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return min(float(value), MAX_TIMEOUT_S)
    return default


async def check_health(
    client: EngineClient,
    deploy: Mapping[str, Any],
    settings: HealthSettings,
    restarts: Any,
) -> str | None:
    """``None`` when the deployed flows are healthy, else the reason. ``restarts`` is a
    zero-argument callable answering the engine's restart count."""
    if deploy.get("status") != "accepted":
        return f"deploy {deploy.get('status')}: {deploy.get('message', '')}"
    started = time.monotonic()
    deadline = started + settings.timeout_seconds
    before = restarts()
    probe_passed = settings.probe is None
    last_problem = "no answer yet"
    while True:
        if restarts() != before:
            return "the engine restarted during the health check"
        try:
            state = await client.state()
        except EngineError as exc:
            state = {"state": "unreachable"}
            last_problem = f"the engine did not answer: {exc}"
        if state.get("state") not in ("start", "unreachable"):
            return f"the engine is in state {state.get('state')}: {state.get('text', '')}".strip()
        if not probe_passed and settings.probe is not None:
            probe_passed, last_problem = await _probe(client, settings.probe)
        now = time.monotonic()
        if (
            probe_passed
            and state.get("state") == "start"
            and now - started >= settings.window_seconds
        ):
            return None
        if now >= deadline:
            if not probe_passed and settings.probe is not None:
                return f"probe {settings.probe.path} failed: {last_problem}"
            return f"not healthy within {settings.timeout_seconds:g} s: {last_problem}"
        await asyncio.sleep(PROBE_INTERVAL_S)


async def _probe(client: EngineClient, probe: Probe) -> tuple[bool, str]:
    try:
        async with client.session.get(
            client.base_url + probe.path, timeout=aiohttp.ClientTimeout(total=2)
        ) as response:
            if response.status == probe.status:
                return True, ""
            return False, f"answered {response.status}, expected {probe.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return False, f"{type(exc).__name__} {exc}"


class EngineWatch:
    """Node status and recent errors, fed by the engine's ``/comms`` events
    (``EngineClient.subscribe(watch.on_event)``) and by the supervisor's crash reports."""

    def __init__(self) -> None:
        self.statuses: dict[str, dict[str, Any]] = {}
        self.errors: deque[dict[str, Any]] = deque(maxlen=ERRORS_KEPT)

    def on_event(self, topic: str, data: Any) -> None:
        if topic.startswith("status/"):
            node = topic.removeprefix("status/")
            if isinstance(data, dict) and data:
                self.statuses[node] = data
                if data.get("fill") == "red":
                    self.error(node, str(data.get("text", "")))
            else:
                self.statuses.pop(node, None)
        elif (
            topic == "debug"
            and isinstance(data, dict)
            and data.get("level") in (10, NODE_RED_ERROR_LEVEL)
        ):
            self.error(str(data.get("id", "")), str(data.get("msg", ""))[:500])

    def on_crash(self, reason: str) -> None:
        self.error("engine", reason)

    def error(self, node: str, message: str) -> None:
        self.errors.append({"time": time.time(), "node": node, "message": message})

    def flows(self, flows: list[Any]) -> list[dict[str, Any]]:
        """Per tab: its label, node status counts by fill colour and the red nodes' texts."""
        tabs: dict[str, dict[str, Any]] = {}
        names: dict[str, str] = {}
        for node in flows:
            if isinstance(node, dict) and node.get("type") == "tab":
                tabs[str(node.get("id"))] = {
                    "id": node.get("id"),
                    "label": str(node.get("label") or node.get("id")),
                    "nodes": 0,
                    "status": {},
                    "red": [],
                }
        for node in flows:
            if not isinstance(node, dict) or str(node.get("z")) not in tabs:
                continue
            tab = tabs[str(node["z"])]
            node_id = str(node.get("id"))
            names[node_id] = str(node.get("name") or node.get("type"))
            tab["nodes"] += 1
            status = self.statuses.get(node_id)
            if status:
                fill = str(status.get("fill") or "none")
                tab["status"][fill] = tab["status"].get(fill, 0) + 1
                if fill == "red":
                    tab["red"].append(
                        {"id": node_id, "name": names[node_id], "text": status.get("text", "")}
                    )
        return list(tabs.values())
