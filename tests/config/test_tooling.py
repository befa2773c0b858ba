"""The tooling configuration keeps up with the code it guards."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import apps
import edge_runner

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ALLOWED_TO_APPS = {
    "edge_runner.contract",
    "edge_runner.catalog",
    "edge_runner.validate",
    "edge_runner.protocol",
}


def test_every_runner_module_but_contract_and_catalog_is_forbidden_to_apps() -> None:
    (contract,) = [
        c
        for c in PYPROJECT["tool"]["importlinter"]["contracts"]
        if c.get("source_modules") == ["apps"]
    ]
    modules = {f"edge_runner.{info.name}" for info in pkgutil.iter_modules(edge_runner.__path__)}
    missing = modules - ALLOWED_TO_APPS - set(contract["forbidden_modules"])
    assert missing == set(), f"add {sorted(missing)} to the import-linter contract"


def test_every_app_module_sits_in_a_layer() -> None:
    """A module left out of the layers contract would be free to import anything."""
    (contract,) = [
        c
        for c in PYPROJECT["tool"]["importlinter"]["contracts"]
        if c["type"] == "layers" and c["layers"][-1].startswith("apps.")
    ]
    layers = {
        name.strip().strip("()")  # "(module)": a layer import-linter allows to be missing
        for layer in contract["layers"]
        for name in layer.replace("|", ":").split(":")
        if name.strip()
    }
    packages = {f"apps.{info.name}" for info in pkgutil.iter_modules(apps.__path__)}
    unlisted = []
    for package in sorted(packages):
        if package in layers:
            continue
        path = [str(ROOT / package.replace(".", "/"))]
        for info in pkgutil.iter_modules(path):
            module = f"{package}.{info.name}"
            if info.name != "migrations" and module not in layers:
                unlisted.append(module)
    assert unlisted == [], f"add {unlisted} to a layer of the apps layers contract"


def test_pytest_markers_are_declared_and_warnings_are_errors() -> None:
    options = PYPROJECT["tool"]["pytest"]["ini_options"]
    assert {marker.split(":")[0] for marker in options["markers"]} >= {"browser", "soak", "slow"}
    assert "--strict-markers" in options["addopts"]
    assert options["filterwarnings"][0] == "error"
    assert options["DJANGO_SETTINGS_MODULE"] == "config.settings.test"


def test_mypy_is_strict_with_the_django_and_pydantic_plugins() -> None:
    mypy = PYPROJECT["tool"]["mypy"]
    assert mypy["strict"] is True
    assert "mypy_django_plugin.main" in mypy["plugins"]
    assert "pydantic.mypy" in mypy["plugins"]
    assert PYPROJECT["tool"]["django-stubs"]["django_settings_module"] == "config.settings.test"
