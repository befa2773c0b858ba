"""Real-world Node-RED flows side by side: Node-RED 5.0.7 and the Manifold runner.

Every flow of ``manifest.json`` (public exports nobody here wrote, each with its source) is
deployed into a fresh engine process after the import fixes the Node-RED editor applies; the
driver then presses every inject node (``POST /inject/:id``), requests every ``http in`` route,
collects the debug sidebar over ``/comms``, normalises timestamps, message ids and random values
and compares the engines. Node-RED's results are kept as golden files (``golden/<name>.json``)
so the runner side runs in CI without Node.js (``test_realworld.py``).

    .venv/bin/python -m tests.edge_runner.realworld.driver --engine both      # the table
    .venv/bin/python -m tests.edge_runner.realworld.driver --engine nodered --record
    .venv/bin/python -m tests.edge_runner.realworld.driver --engine manifold --only cb-basic

Node-RED is started with the command ``bash ../shared/bench/nodered.sh`` prints (``--nodered-cmd``
overrides it). Everything stays on loopback: MQTT brokers become the local Mosquitto (topics get a
unique prefix), ``http request`` URLs to other hosts go to a local peer that answers a fixed page,
``localhost:1880`` becomes the engine's own port. Flows that cannot run offline say why in the
manifest (``offline``) and are deployed but not driven.

Manifest fields besides ``name``, ``file`` and ``source`` (repo, path, commit, licence):
``presses`` (rounds of inject presses, default 1), ``settle_s`` (wait after each press and
request), ``final_settle_s`` (the run ends once this long passes without debug output),
``distinct`` (why only each debug node's distinct messages are compared: repeating injects),
``mask`` (paths in debug output holding random values, ``payload.x``), ``ignore`` (ids whose
debug items are random as a whole), ``runner_types`` (contrib node types the runner implements:
the golden Node-RED, without that package, lists them as missing), ``offline``, ``notes``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.client
import http.server
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
MANIFEST = HERE / "manifest.json"
GOLDEN = HERE / "golden"
NODERED_SH = REPO.parent / "shared" / "bench" / "nodered.sh"
MANIFOLD_CMD = (
    f"{shlex.quote(sys.executable)} -m edge_runner serve --host {HOST} --port {{port}} "
    "--userdir {userdir}"
)
MQTT_BROKER = (HOST, 1883)
PEER_PAGE = (
    "<html><head><title>Local peer</title></head><body>"
    "<h1>Local peer</h1><p class='lead'>Answers every request</p></body></html>"
)
PROBE_TIMEOUT_S = 10.0
QUIET_CAP_S = 15.0
FLOW_NODE_KEYS = ("x", "y", "wires")
NOT_FLOW_NODES = {"tab", "subflow", "group"}


# ------------------------------------------------------------------ manifest
@dataclass(frozen=True)
class FlowEntry:
    """One real-world flow: its file, where it came from and how to drive it."""

    name: str
    file: str
    source: dict[str, Any]
    presses: int = 1
    settle_s: float = 0.6
    final_settle_s: float = 1.0
    distinct: str = ""
    mask: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    runner_types: tuple[str, ...] = ()
    offline: str = ""
    notes: str = ""

    def load(self) -> Any:
        return json.loads((HERE / self.file).read_text())


def load_manifest(path: Path = MANIFEST) -> list[FlowEntry]:
    entries = []
    for raw in json.loads(path.read_text())["flows"]:
        item = dict(raw)
        item["mask"] = tuple(item.get("mask", ()))
        item["ignore"] = tuple(item.get("ignore", ()))
        item["runner_types"] = tuple(item.get("runner_types", ()))
        entries.append(FlowEntry(**item))
    return entries


# ------------------------------------------------------------------ import fixes
def is_flow_node(node: dict[str, Any]) -> bool:
    """A node drawn on a tab (the editor's test: it has a position or wires)."""
    return node.get("type") not in NOT_FLOW_NODES and any(k in node for k in FLOW_NODE_KEYS)


def import_fixes(raw: Any, *, tab_id: str = "rw.import.tab") -> list[dict[str, Any]]:
    """What the editor's import (``RED.nodes.import``) does before a deploy.

    A single node object becomes an array; nodes of type ``workspace`` are tabs; a node whose
    ``z`` is missing (flow nodes) or names no tab or subflow of the import (flow and config
    nodes) goes to the active workspace, here one new tab; an empty ``z`` is dropped;
    ``x``/``y`` of flow nodes are numbers and ``wires`` defaults to ``[]``.
    """
    nodes = [raw] if isinstance(raw, dict) else list(raw)
    nodes = [copy.deepcopy(n) for n in nodes if isinstance(n, dict) and n.get("type")]
    for node in nodes:
        if node["type"] == "workspace":
            node["type"] = "tab"
    containers = {n["id"] for n in nodes if n["type"] in ("tab", "subflow")}
    needs_tab = False
    for node in nodes:
        if node["type"] in ("tab", "subflow"):
            continue
        drawn = is_flow_node(node) or node["type"] == "group"
        if node.get("z") in containers:
            pass
        elif drawn or node.get("z"):
            node["z"] = tab_id
            needs_tab = True
        else:
            node.pop("z", None)
        if drawn:
            node["x"] = float(node.get("x") or 0)
            node["y"] = float(node.get("y") or 0)
            if node["type"] != "group":
                node.setdefault("wires", [])
    if needs_tab:
        tab = {"id": tab_id, "type": "tab", "label": "Imported", "disabled": False, "info": ""}
        nodes.insert(0, tab)
    return nodes


def localise(
    nodes: list[dict[str, Any]], *, engine_port: int, peer_port: int, mqtt_prefix: str
) -> list[dict[str, Any]]:
    """Keep every connection on loopback (see the module docstring)."""
    own = f"{HOST}:{engine_port}"

    def own_port(text: str) -> str:
        return re.sub(r"(localhost|127\.0\.0\.1):1880\b", own, text)

    out = []
    for original in nodes:
        node = copy.deepcopy(original)
        kind = node["type"]
        for key, value in list(node.items()):
            if isinstance(value, str):
                node[key] = own_port(value)
        if kind == "http request" and node.get("url"):
            parts = urllib.parse.urlsplit(node["url"])
            if parts.scheme in ("http", "https") and parts.netloc != own:
                node["url"] = urllib.parse.urlunsplit(
                    ("http", f"{HOST}:{peer_port}", parts.path, parts.query, parts.fragment)
                )
                node.pop("tls", None)
        elif kind == "mqtt-broker":
            node["broker"], node["port"] = MQTT_BROKER[0], str(MQTT_BROKER[1])
            node["usetls"] = False
        elif kind in ("mqtt in", "mqtt out") and node.get("topic"):
            node["topic"] = f"{mqtt_prefix}/{node['topic']}"
        out.append(node)
    return out


def probe_nodes(tag: str) -> list[dict[str, Any]]:
    """http in -> change -> http response on a tab of its own: answers once the flows run."""
    tab = f"rw.probe.{tag}"
    return [
        {"id": tab, "type": "tab", "label": "driver probe", "disabled": False, "info": ""},
        {
            "id": f"{tab}.in",
            "type": "http in",
            "z": tab,
            "url": f"/realworld-probe/{tag}",
            "method": "get",
            "upload": False,
            "swaggerDoc": "",
            "x": 100,
            "y": 40,
            "wires": [[f"{tab}.set"]],
        },
        {
            "id": f"{tab}.set",
            "type": "change",
            "z": tab,
            "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": tag, "tot": "str"}],
            "x": 300,
            "y": 40,
            "wires": [[f"{tab}.out"]],
        },
        {
            "id": f"{tab}.out",
            "type": "http response",
            "z": tab,
            "statusCode": "",
            "headers": {},
            "x": 500,
            "y": 40,
            "wires": [],
        },
    ]


def disabled(node: dict[str, Any], tabs: dict[str, dict[str, Any]]) -> bool:
    tab = tabs.get(str(node.get("z")), {})
    return bool(node.get("d")) or bool(tab.get("disabled"))


# ------------------------------------------------------------------ normalising
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
JS_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{2} \d{4} \d{2}:\d{2}:\d{2} GMT[+-]\d{4}(?: \([^)]*\))?"
)
EPOCH_MS_TEXT = re.compile(r"(?<!\d)1[6-9]\d{11}(?:\.\d+)?(?!\d)")
HEX_ID = re.compile(r"^[0-9a-f]{16}$")
EPOCH_MS_RANGE = (1.5e12, 2.5e12)


@dataclass
class Normaliser:
    """Turns one engine's debug output into values the other engine can be compared with."""

    replacements: dict[str, str] = field(default_factory=dict)
    mask: tuple[str, ...] = ()

    def text(self, value: str) -> str:
        for old, new in self.replacements.items():
            value = value.replace(old, new)
        if HEX_ID.match(value):
            return "<id>"
        value = ISO_TIME.sub("<time>", value)
        value = JS_DATE.sub("<time>", value)
        return EPOCH_MS_TEXT.sub("<timestamp>", value)

    def value(self, value: Any, path: str = "$") -> Any:
        if path in self.mask:
            return "<masked>"
        if isinstance(value, dict):
            if value.get("__enc__") or (value.get("type") == "Buffer" and "data" in value):
                return self.encoded(value)
            return {
                k: self.value(v, k if path == "$" else f"{path}.{k}")
                for k, v in sorted(value.items())
                if k != "_msgid"
            }
        if isinstance(value, list):
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, (int, float)):
            if EPOCH_MS_RANGE[0] <= value <= EPOCH_MS_RANGE[1]:
                return "<timestamp>"
            return int(value) if float(value).is_integer() else round(value, 9)
        if isinstance(value, str):
            return self.text(value)
        return value

    def encoded(self, value: dict[str, Any]) -> Any:
        kind = value.get("type")
        if kind == "Buffer":
            return {"$buffer": value.get("data", [])}
        if kind == "number":
            return {"$number": value.get("data")}
        if kind == "array":
            return {"$array": self.value(value.get("data", [])), "length": value.get("length")}
        if kind == "error":
            data = value.get("data") or {}
            return {"$error": self.text(str(data.get("message", "")))}
        return {f"${kind}": True}

    def debug_item(self, data: dict[str, Any]) -> dict[str, Any]:
        """One /comms ``debug`` item as compared: format kind, decoded message, level."""
        fmt = str(data.get("format") or "")
        raw = data.get("msg")
        item: dict[str, Any] = {"format": fmt.split("[", 1)[0]}
        if "level" in data:
            item["level"] = data["level"]
        decoded: Any = raw
        if isinstance(raw, str) and (fmt == "Object" or fmt.startswith("array")):
            with contextlib.suppress(ValueError):
                decoded = json.loads(raw)
        item["msg"] = self.value(decoded)
        if data.get("topic") is not None:
            item["topic"] = self.value(data["topic"])
        return item


# ------------------------------------------------------------------ engines
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    sent = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


class EngineProcess:
    """One engine started from a command template with ``{port}`` and ``{userdir}``."""

    def __init__(self, cmd: str, workdir: Path) -> None:
        self.cmd, self.workdir = cmd, workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "engine.log"

    def start(self, timeout: float = 60.0) -> float:
        userdir = self.workdir / f"userdir-{self.port}"
        shutil.rmtree(userdir, ignore_errors=True)
        userdir.mkdir(parents=True)
        argv = shlex.split(
            self.cmd.replace("{port}", str(self.port)).replace("{userdir}", str(userdir))
        )
        started = time.perf_counter()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                start_new_session=True,
            )
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited during startup, see {self.log}")
            with contextlib.suppress(OSError):
                if request(self.port, "GET", "/flows", timeout=1)[0] == 200:
                    return time.perf_counter() - started
            time.sleep(0.02)
        raise RuntimeError(f"engine did not answer GET /flows within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


class Comms:
    """The engine's /comms websocket; every item lands on a queue as ``(topic, data)``."""

    def __init__(self, port: int) -> None:
        self.items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stack = contextlib.ExitStack()
        self.ws: ClientConnection = self.stack.enter_context(
            connect(f"ws://{HOST}:{port}/comms", open_timeout=10)
        )
        for topic in ("debug", "notification/#", "status/#"):
            self.ws.send(json.dumps({"subscribe": topic}))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(WebSocketException, OSError):
            for frame in self.ws:
                with contextlib.suppress(ValueError):
                    batch = json.loads(frame)
                    for item in batch if isinstance(batch, list) else [batch]:
                        if isinstance(item, dict):
                            self.items.put((str(item.get("topic")), item.get("data")))

    def drain(self, seconds: float) -> Iterator[tuple[str, Any]]:
        deadline = time.perf_counter() + seconds
        while True:
            left = deadline - time.perf_counter()
            try:
                yield self.items.get(timeout=left) if left > 0 else self.items.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        with contextlib.suppress(WebSocketException, OSError):
            self.stack.close()


class Peer:
    """Stands in for every internet host a flow's ``http request`` names: one fixed page."""

    def __init__(self) -> None:
        page = PEER_PAGE.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the driver's output is the table."""

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------ one flow
@dataclass
class FlowResult:
    """What one engine did with one flow (the golden file holds Node-RED's)."""

    accepted: bool
    running: bool
    deploy_status: int = 0
    missing_types: list[str] = field(default_factory=list)
    debug: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    http: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "running": self.running,
            "missing_types": self.missing_types,
            "debug": self.debug,
            "http": self.http,
        }


def wait_running(port: int, tag: str) -> bool:
    deadline = time.perf_counter() + PROBE_TIMEOUT_S
    while time.perf_counter() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, body, _ = request(port, "GET", f"/realworld-probe/{tag}", timeout=2)
            if status == 200 and body.decode(errors="replace") == tag:
                return True
        time.sleep(0.05)
    return False


def note_missing_types(topic: str, data: Any, result: FlowResult) -> None:
    if topic.startswith("notification/") and isinstance(data, dict):
        types = data.get("types")
        if data.get("error") == "missing-types" and isinstance(types, list):
            result.missing_types = sorted({*result.missing_types, *map(str, types)})


def collect(comms: Comms, seconds: float, result: FlowResult, norm: Normaliser) -> int:
    """Record what arrives within ``seconds``; answers how many debug items that was."""
    count = 0
    for topic, data in comms.drain(seconds):
        note_missing_types(topic, data, result)
        if topic == "debug" and isinstance(data, dict) and data.get("id"):
            key = str(data["id"])
            result.debug.setdefault(key, []).append(norm.debug_item(data))
            count += 1
    return count


def collect_until_quiet(comms: Comms, quiet_s: float, result: FlowResult, norm: Normaliser) -> None:
    """Record until ``quiet_s`` pass without a debug item (a loaded machine is slower, never
    faster), for at most ``QUIET_CAP_S``: a repeating inject is never quiet."""
    deadline = time.perf_counter() + QUIET_CAP_S
    while collect(comms, quiet_s, result, norm) and time.perf_counter() < deadline:
        pass


def http_routes(nodes: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(node id, method, path) of every ``http in`` route, path parameters filled in."""
    routes = []
    for node in nodes:
        if node.get("type") == "http in" and node.get("method") in ("get", "post"):
            path = re.sub(r":(\w+)", r"\1-value", str(node.get("url") or "/"))
            path = path if path.startswith("/") else "/" + path
            routes.append((str(node["id"]), str(node["method"]).upper(), path))
    return routes


def run_flow(cmd: str, entry: FlowEntry, workdir: Path, peer: Peer) -> FlowResult:
    """Fresh engine, deploy, wait until running, press every inject, collect, stop."""
    engine = EngineProcess(cmd, workdir)
    engine.start()
    comms = Comms(engine.port)
    tag = f"rw{os.getpid()}x{engine.port}"
    norm = Normaliser(
        replacements={
            f"{tag}/": "",
            f"{HOST}:{engine.port}": "localhost:1880",
            f"{HOST}:{peer.port}": "peer",
            str(engine.port): "1880",
        },
        mask=entry.mask,
    )
    try:
        nodes = import_fixes(entry.load())
        nodes = localise(nodes, engine_port=engine.port, peer_port=peer.port, mqtt_prefix=tag)
        status, body, _ = request(
            engine.port,
            "POST",
            "/flows",
            {"flows": nodes + probe_nodes(tag)},
            {"Node-RED-API-Version": "v2", "Node-RED-Deployment-Type": "full"},
            timeout=30,
        )
        result = FlowResult(accepted=status == 200, running=False, deploy_status=status)
        if status != 200:
            result.error = body.decode(errors="replace")[:300]
            collect(comms, 0.3, result, norm)
            return result
        result.running = wait_running(engine.port, tag)
        collect(comms, entry.settle_s, result, norm)
        if not result.running or entry.offline:
            return result
        tabs = {n["id"]: n for n in nodes if n["type"] == "tab"}
        injects = [n for n in nodes if n["type"] == "inject" and not disabled(n, tabs)]
        for _ in range(entry.presses):
            for node in injects:
                request(engine.port, "POST", f"/inject/{node['id']}", {})
                collect(comms, entry.settle_s, result, norm)
        for node_id, method, path in http_routes(nodes):
            code, answer, headers = request(
                engine.port, method, path, {} if method == "POST" else None
            )
            text = answer.decode(errors="replace")
            kind = headers.get("content-type", "").split(";")[0]
            result.http[node_id] = {"status": code, "type": kind, "body": norm.value(text)}
            collect(comms, entry.settle_s, result, norm)
        if entry.distinct:
            collect(comms, entry.final_settle_s, result, norm)
        else:
            collect_until_quiet(comms, entry.final_settle_s, result, norm)
        return result
    finally:
        comms.close()
        engine.stop()


# ------------------------------------------------------------------ comparing
def distinct(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for item in items:
        seen.setdefault(json.dumps(item, sort_keys=True), item)
    return [seen[k] for k in sorted(seen)]


def differences(entry: FlowEntry, golden: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Every way ``actual`` differs from ``golden`` (empty: the same debug output)."""
    out = []
    golden = {
        **golden,
        "missing_types": [
            t for t in golden.get("missing_types", []) if t not in entry.runner_types
        ],
    }
    for key in ("accepted", "running", "missing_types"):
        if golden.get(key) != actual.get(key):
            out.append(f"{key}: {actual.get(key)!r}, Node-RED {golden.get(key)!r}")
    want, got = golden.get("debug", {}), actual.get("debug", {})
    for node_id in sorted((set(want) | set(got)) - set(entry.ignore)):
        expected, seen = want.get(node_id, []), got.get(node_id, [])
        if entry.distinct:
            expected, seen = distinct(expected), distinct(seen)
        if expected == seen:
            continue
        if len(expected) != len(seen):
            out.append(f"debug {node_id}: {len(seen)} messages, Node-RED {len(expected)}")
        for i in range(max(len(expected), len(seen))):
            e = expected[i] if i < len(expected) else None
            s = seen[i] if i < len(seen) else None
            if e != s:
                out.append(
                    f"debug {node_id}#{i}: {json.dumps(s)[:200]}, Node-RED {json.dumps(e)[:200]}"
                )
                break
    for node_id in sorted(set(golden.get("http", {})) | set(actual.get("http", {}))):
        e, s = golden.get("http", {}).get(node_id), actual.get("http", {}).get(node_id)
        if e != s:
            out.append(f"http {node_id}: {json.dumps(s)[:200]}, Node-RED {json.dumps(e)[:200]}")
    return out


def golden_path(entry: FlowEntry) -> Path:
    return GOLDEN / f"{entry.name}.json"


def load_golden(entry: FlowEntry) -> dict[str, Any] | None:
    path = golden_path(entry)
    return json.loads(path.read_text()) if path.is_file() else None


def uses_only_core(entry: FlowEntry, golden: dict[str, Any]) -> bool:
    return bool(golden.get("running")) and not golden.get("missing_types")


# ------------------------------------------------------------------ script
def nodered_command() -> str:
    done = subprocess.run(
        ["bash", str(NODERED_SH)], capture_output=True, text=True, check=True, timeout=900
    )
    return done.stdout.strip().splitlines()[-1]


def select(entries: list[FlowEntry], only: list[str]) -> list[FlowEntry]:
    if not only:
        return entries
    return [e for e in entries if any(tok in e.name for tok in only)]


def mark(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "NO")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("nodered", "manifold", "both"), default="both")
    parser.add_argument("--record", action="store_true", help="write Node-RED's golden files")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="name substrings")
    parser.add_argument("--nodered-cmd", default="", help="default: what nodered.sh prints")
    parser.add_argument("--manifold-cmd", default=MANIFOLD_CMD)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every difference")
    args = parser.parse_args(argv)

    entries = select(load_manifest(), args.only)
    engines: dict[str, str] = {}
    if args.engine in ("nodered", "both"):
        engines["nodered"] = args.nodered_cmd or nodered_command()
    if args.engine in ("manifold", "both"):
        engines["manifold"] = args.manifold_cmd
    workdir = Path(tempfile.mkdtemp(prefix="manifold-realworld-"))
    peer = Peer()
    rows = []
    try:
        for entry in entries:
            row: dict[str, Any] = {"name": entry.name}
            for engine, cmd in engines.items():
                try:
                    result = run_flow(cmd, entry, workdir, peer)
                except (RuntimeError, OSError, WebSocketException) as exc:
                    result = FlowResult(accepted=False, running=False, error=str(exc))
                row[engine] = result
                if engine == "nodered" and args.record:
                    GOLDEN.mkdir(exist_ok=True)
                    text = json.dumps(result.as_json(), indent=1, sort_keys=True)
                    golden_path(entry).write_text(text + "\n")
            # Both engines: the runner against this run's Node-RED. One engine: against the
            # golden file (for Node-RED alone, that shows how reproducible the golden files are).
            golden = load_golden(entry)
            if "nodered" in row and ("manifold" in row or args.record):
                golden = row["nodered"].as_json()
            candidate = "manifold" if "manifold" in row else "nodered"
            if golden is not None and not args.record:
                row["diff"] = differences(entry, golden, row[candidate].as_json())
                row["core"] = uses_only_core(entry, golden)
                row["candidate"] = candidate
            rows.append(row)
            print(table_line(row, engines), flush=True)
            if args.verbose:
                for line in row.get("diff", []):
                    print(f"    {line}", flush=True)
                for engine in engines:
                    if row[engine].error:
                        print(f"    {engine}: {row[engine].error}", flush=True)
    finally:
        peer.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(totals(rows, engines))
    return 0


def table_line(row: dict[str, Any], engines: dict[str, str]) -> str:
    cells = [row["name"][:52].ljust(52)]
    for engine in engines:
        r: FlowResult = row[engine]
        cells.append(f"{engine}: {mark(r.accepted)}/{mark(r.running)}")
    if "diff" in row:
        same = "same" if not row["diff"] else f"DIFF({len(row['diff'])})"
        cells.append(same if row["core"] else f"{same} (not core)")
    return "  ".join(cells)


def totals(rows: list[dict[str, Any]], engines: dict[str, str]) -> str:
    n = len(rows)
    lines = ["", "| | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
    for label, attr in (("deploy accepted", "accepted"), ("flows running", "running")):
        counts = [sum(bool(getattr(r[e], attr)) for r in rows) for e in engines]
        lines.append(f"| {label} | " + " | ".join(f"{c} / {n}" for c in counts) + " |")
    core = [r for r in rows if "diff" in r and r["core"]]
    both_ran = [r for r in core if r[r["candidate"]].running]
    for label, subset in (("where both ran", both_ran), ("of all core flows", core)):
        same = sum(not r["diff"] for r in subset)
        cells = [
            f"{same} / {len(subset)}" if any(r["candidate"] == e for r in subset) else "—"
            for e in engines
        ]
        lines.append(f"| same debug output {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
