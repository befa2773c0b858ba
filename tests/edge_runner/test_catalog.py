"""catalog.json: generated from the registry, complete, and checked for staleness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_runner import catalog


def test_every_node_type_has_a_schema_help_and_ports() -> None:
    built = catalog.build_catalog()
    types = [n["type"] for n in built["nodes"]]
    assert len(types) == len(set(types))
    for required in (
        "python-function",
        "link in",
        "link out",
        "link call",
        "catch",
        "status",
        "complete",
        "comment",
        "subflow",
    ):
        assert required in types
    for entry in built["nodes"]:
        assert entry["help"].strip(), entry["type"]
        assert entry["schema"]["type"] == "object"
        # fields another Node-RED version wrote load (kept, ignored): STYLE rule 6
        assert entry["schema"].get("additionalProperties") is not False, entry["type"]
        assert entry["inputs"] in (0, 1)
        assert entry["module"].startswith("edge_runner.nodes.")
    function = next(n for n in built["nodes"] if n["type"] == "python-function")
    assert function["dynamic_outputs"] == "outputs"
    assert {"func", "outputs", "timeout", "initialize", "finalize", "libs", "noerr"} <= set(
        function["schema"]["properties"]
    )
    assert "helper" not in types  # test-only types stay out


def test_check_passes_when_fresh_and_reports_what_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "catalog.json"
    files = ["--output", str(path), "--index", str(tmp_path / "_index.json")]
    assert catalog.main(["--check", *files]) == 1
    assert "missing" in capsys.readouterr().err
    assert catalog.main(files) == 0
    assert catalog.main(["--check", *files]) == 0
    data = json.loads(path.read_text())
    data["nodes"] = [n for n in data["nodes"] if n["type"] != "comment"]
    next(n for n in data["nodes"] if n["type"] == "catch")["help"] = "old help\n"
    data["nodes"].append({"type": "retired-node"})
    path.write_text(catalog.render(data))
    capsys.readouterr()
    assert catalog.main(["--check", *files]) == 1
    err = capsys.readouterr().err
    assert "added: comment" in err
    assert "removed: retired-node" in err
    assert "changed: catch (help)" in err


def test_the_node_index_maps_every_catalog_type_to_its_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = ["--output", str(tmp_path / "catalog.json"), "--index", str(tmp_path / "i.json")]
    assert catalog.main(files) == 0
    built = json.loads((tmp_path / "catalog.json").read_text())
    index = json.loads((tmp_path / "i.json").read_text())["types"]
    # every catalog type, plus the engine's internal ones (never in flows.json)
    assert {n["type"]: n["module"] for n in built["nodes"]}.items() <= index.items()
    assert set(index) - {n["type"] for n in built["nodes"]} == {"subflow-status"}
    assert index["link out"] == "edge_runner.nodes.link"
    (tmp_path / "i.json").write_text(catalog.render({"index_version": 1, "types": {}}))
    capsys.readouterr()
    assert catalog.main(["--check", *files]) == 1
    assert "i.json is stale" in capsys.readouterr().err


def test_the_committed_catalog_is_up_to_date() -> None:
    """The CI gate: regenerate with `python -m edge_runner.catalog` after changing a node."""
    assert catalog.main(["--check"]) == 0
