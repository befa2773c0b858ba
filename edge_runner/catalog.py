"""catalog.json: every node type the runner knows, exported from the node registry.

    python -m edge_runner.catalog            # (re)write catalog.json and the node index
    python -m edge_runner.catalog --check    # exit 1 with a summary when either is stale
    python -m edge_runner.catalog --output PATH --index PATH

Per node type: type key, version, category, label, color, icon, inputs/outputs (and the config
field giving a dynamic output count), whether it is a config node, credential field names,
output labels, the help text (markdown) and the JSON schema of its ``Config``. The platform
validates flows and the editor renders forms from this file; it is generated, never edited.

The same run writes ``edge_runner/nodes/_index.json`` (node type -> module), which lets the
runner import only the node modules a deployed flow uses (``edge_runner.runtime.loader``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path
from typing import Any

from edge_runner.contract import REGISTRY, Node
from edge_runner.runtime.loader import INDEX_PATH, build_index

CATALOG_VERSION = 1
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "catalog.json"
NODES_PACKAGE = "edge_runner.nodes"


def _load_nodes() -> None:
    package = importlib.import_module(NODES_PACKAGE)
    for info in pkgutil.walk_packages(package.__path__, NODES_PACKAGE + "."):
        importlib.import_module(info.name)


def describe(cls: type[Node]) -> dict[str, Any]:
    spec = cls.SPEC
    return {
        "type": spec.type,
        "version": spec.version,
        "category": spec.category.value,
        "label": spec.label or spec.type,
        "color": spec.color,
        "icon": spec.icon,
        "inputs": spec.inputs,
        "outputs": spec.outputs,
        "dynamic_outputs": spec.dynamic_outputs,
        "is_config": spec.is_config,
        "credentials": list(spec.credentials),
        "output_labels": list(spec.output_labels),
        "help": spec.help.strip() + "\n",
        "module": cls.__module__,
        "schema": cls.Config.model_json_schema(),
    }


def build_catalog() -> dict[str, Any]:
    """The catalog of every node type shipped in ``edge_runner.nodes`` (test doubles and
    types registered elsewhere are left out)."""
    _load_nodes()
    nodes = [
        describe(cls)
        for cls in REGISTRY
        if cls.__module__.startswith(NODES_PACKAGE + ".") and not cls.SPEC.internal
    ]
    return {"catalog_version": CATALOG_VERSION, "nodes": nodes}


def render(catalog: dict[str, Any]) -> str:
    return json.dumps(catalog, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def diff_summary(old_text: str, new: dict[str, Any]) -> list[str]:
    """Human summary of what changed between a committed catalog and the current registry."""
    try:
        old = json.loads(old_text)
        old_nodes = {n["type"]: n for n in old.get("nodes", [])}
    except (ValueError, AttributeError, KeyError, TypeError):
        return ["the committed catalog is not a valid catalog file"]
    new_nodes = {n["type"]: n for n in new["nodes"]}
    lines = [f"added: {t}" for t in sorted(set(new_nodes) - set(old_nodes))]
    lines += [f"removed: {t}" for t in sorted(set(old_nodes) - set(new_nodes))]
    for node_type in sorted(set(old_nodes) & set(new_nodes)):
        before, after = old_nodes[node_type], new_nodes[node_type]
        keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        if keys:
            lines.append(f"changed: {node_type} ({', '.join(keys)})")
    if not lines and old.get("catalog_version") != new.get("catalog_version"):
        lines.append("catalog_version changed")
    return lines or ["formatting differs (regenerate the file)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge_runner.catalog", description="Write or check catalog.json."
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the file is missing or stale"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH)
    parser.add_argument(
        "--index",
        type=Path,
        default=INDEX_PATH,
        help="the type -> module index the runner loads node modules by",
    )
    args = parser.parse_args(argv)
    text = render(build_catalog())
    index_text = render(build_index())
    path: Path = args.output
    index_path: Path = args.index
    if args.check:
        status = 0
        for target, expected in ((path, text), (index_path, index_text)):
            if not target.is_file():
                sys.stderr.write(f"{target} is missing: run python -m edge_runner.catalog\n")
                status = 1
                continue
            current = target.read_text("utf-8")
            if current != expected:
                sys.stderr.write(f"{target} is stale: run python -m edge_runner.catalog\n")
                if target is path:
                    for line in diff_summary(current, json.loads(text)):
                        sys.stderr.write(f"  {line}\n")
                status = 1
        if status == 0:
            sys.stdout.write(f"{path} and {index_path} are up to date\n")
        return status
    path.write_text(text, "utf-8")
    index_path.write_text(index_text, "utf-8")
    sys.stdout.write(
        f"wrote {path} ({len(json.loads(text)['nodes'])} node types) and {index_path}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
