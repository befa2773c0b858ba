"""deploy/ stays in step with the settings: every variable documented, every command real."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from edge_runner.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\bMANIFOLD_[A-Z_]+\b")


def settings_variables() -> set[str]:
    text = "".join(path.read_text() for path in (ROOT / "config" / "settings").glob("*.py"))
    return set(VARIABLE.findall(text))


def test_env_example_lists_exactly_the_variables_settings_read() -> None:
    example = (ROOT / "deploy" / "manifold.env.example").read_text()
    keys = {line.split("=", 1)[0] for line in example.splitlines() if re.match(r"^MANIFOLD_", line)}
    assert keys == settings_variables()


def test_readme_configuration_table_covers_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    assert settings_variables() <= set(VARIABLE.findall(readme))


def test_compose_has_the_production_services_and_shared_env() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "beat"} <= set(services)
    for name in ("web", "worker", "beat", "migrate"):
        env = services[name]["environment"]
        assert env["MANIFOLD_DATABASE_URL"].startswith("postgres://")
        assert env["MANIFOLD_REDIS_URL"].startswith("redis://")
    assert "config.asgi:application" in services["web"]["command"]


def test_systemd_units_start_real_entry_points() -> None:
    units = {p.name: p.read_text() for p in (ROOT / "deploy" / "systemd").glob("*.service")}
    assert set(units) == {
        "manifold-web.service",
        "manifold-worker.service",
        "manifold-beat.service",
        "manifold-edge-runner.service",
    }
    assert "config.asgi:application" in units["manifold-web.service"]
    assert "--workers" in units["manifold-web.service"]
    assert "-A config worker" in units["manifold-worker.service"]
    assert "-A config beat" in units["manifold-beat.service"]
    assert "-m edge_runner serve" in units["manifold-edge-runner.service"]
    for text in units.values():
        assert "ExecStart=" in text
        assert "[Install]" in text


def test_the_runner_unit_is_its_own_unprivileged_user_behind_a_token() -> None:
    """Issue #7: whoever deploys runs code as this user, so it owns only a private data
    directory, sees the rest of the system read-only, and its Admin API needs a token."""
    text = (ROOT / "deploy" / "systemd" / "manifold-edge-runner.service").read_text()
    settings: dict[str, list[str]] = {}
    for line in text.replace("\\\n", " ").splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    assert settings["User"] == ["manifold-runner"]
    assert settings["StateDirectory"] == ["manifold-runner"]
    assert settings["StateDirectoryMode"] == ["0700"]
    for key, value in {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "CapabilityBoundingSet": "",
        "ProtectKernelTunables": "yes",
        "RestrictSUIDSGID": "yes",
    }.items():
        assert settings[key] == [value], key
    exec_start = settings["ExecStart"][0].split()
    assert exec_start[exec_start.index("--host") + 1] == "127.0.0.1"
    assert settings["LoadCredential"] == ["admin-token:/etc/manifold-runner/admin-token"]
    assert exec_start[exec_start.index("--admin-token-file") + 1] == "%d/admin-token"
    module = exec_start.index("edge_runner")
    options = build_parser().parse_args(exec_start[module + 1 :])
    assert options.admin_token_file == "%d/admin-token"
