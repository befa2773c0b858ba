"""deploy/ stays in step with the settings: every variable documented, every command real."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from edge_runner.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\bMANIFOLD_[A-Z_]+\b")


def settings_variables(*names: str) -> set[str]:
    """The MANIFOLD_* variables the settings modules read (all of them, or the ones named)."""
    folder = ROOT / "config" / "settings"
    paths = [folder / f"{name}.py" for name in names] if names else folder.glob("*.py")
    return set(VARIABLE.findall("".join(path.read_text() for path in paths)))


def test_env_example_lists_exactly_the_variables_settings_read() -> None:
    """Production reads base + prod; what only dev/test read (MANIFOLD_DEBUG) is not for it."""
    example = (ROOT / "deploy" / "manifold.env.example").read_text()
    keys = {line.split("=", 1)[0] for line in example.splitlines() if re.match(r"^MANIFOLD_", line)}
    assert keys == settings_variables("base", "prod")


def test_readme_configuration_table_covers_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    assert settings_variables() <= set(VARIABLE.findall(readme))


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    return loaded


def script_commands() -> set[str]:
    """The subcommands ``deploy/manifold`` implements (its ``case`` labels)."""
    text = (ROOT / "deploy" / "manifold").read_text()
    return set(re.findall(r"^  ([a-z-]+)\)$", text, re.MULTILINE))


def test_compose_has_the_production_services_and_shared_env() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "beat"} <= set(services)
    for name in ("web", "worker", "beat", "migrate"):
        env = services[name]["environment"]
        assert env["MANIFOLD_DATABASE_URL"].startswith("postgres://")
        assert env["MANIFOLD_REDIS_URL"].startswith("redis://")


def test_systemd_units_start_real_entry_points() -> None:
    units = {p.name: p.read_text() for p in (ROOT / "deploy" / "systemd").glob("*.service")}
    assert set(units) == {
        "manifold-web.service",
        "manifold-worker.service",
        "manifold-beat.service",
        "manifold-edge-runner.service",
        "manifold-edge-runner-managed.service",
        "manifold-hosted.service",
    }
    assert "/opt/manifold/deploy/manifold web " in units["manifold-web.service"]
    assert "--workers" in units["manifold-web.service"]
    assert "/opt/manifold/deploy/manifold worker " in units["manifold-worker.service"]
    assert "/opt/manifold/deploy/manifold beat " in units["manifold-beat.service"]
    assert "-m edge_runner serve" in units["manifold-edge-runner.service"]
    assert "-m edge_runner run" in units["manifold-edge-runner-managed.service"]
    assert "/opt/manifold/deploy/manifold hosted" in units["manifold-hosted.service"]
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


def test_the_script_runs_the_real_entry_points() -> None:
    text = (ROOT / "deploy" / "manifold").read_text()
    assert {"build", "release", "first-account", "web", "worker", "beat", "healthcheck"} <= (
        script_commands()
    )
    for entry in ("config.asgi:application", "-A config worker", "-A config beat", "npm ci"):
        assert entry in text
    assert "collectstatic" in text
    assert "check --deploy --fail-level WARNING" in text
    # Below the unit's TimeoutStopSec (30 s): a stuck consumer must not turn a restart into a kill.
    assert "--timeout-graceful-shutdown 20" in text


def test_systemd_compose_and_dockerfile_share_one_set_of_steps() -> None:
    """Every service and release step calls deploy/manifold, never its own copy of a command."""
    commands = script_commands()
    units = [p.read_text() for p in (ROOT / "deploy" / "systemd").glob("manifold-[wb]*.service")]
    for text in units:
        (start,) = re.findall(r"^ExecStart=/opt/manifold/deploy/manifold ([a-z-]+)", text, re.M)
        assert start in commands
    services = compose()["services"]
    for name in ("migrate", "web", "worker", "beat"):
        assert services[name]["command"][:1] == ["deploy/manifold"], name
        assert services[name]["command"][1] in commands
    assert services["migrate"]["command"] == ["deploy/manifold", "release"]
    assert services["web"]["healthcheck"]["test"] == ["CMD", "deploy/manifold", "healthcheck"]
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"deploy/manifold build$", dockerfile, re.M)
    readme = (ROOT / "deploy" / "README.md").read_text()
    for step in ("build", "release", "first-account"):
        assert f"deploy/manifold --env-file /etc/manifold/manifold.env {step}" in readme


def test_static_root_is_never_a_source_folder_and_compose_serves_the_built_files() -> None:
    # In the image /opt/manifold is the repository root: static/ there is a STATICFILES_DIRS
    # entry, so collecting into it fails (E002), and the compose volume must not hide the files.
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    (image_root,) = re.findall(r"MANIFOLD_STATIC_ROOT=(\S+)", dockerfile)
    assert image_root not in {"/opt/manifold/static", "/opt/manifold/node_modules"}
    assert "WORKDIR /opt/manifold" in dockerfile
    services = compose()["services"]
    for name in ("web", "worker", "beat", "migrate"):
        assert services[name]["environment"]["MANIFOLD_STATIC_ROOT"] == image_root
    volumes = [volume.split(":")[1] for volume in services["web"]["volumes"]]
    assert not any(image_root.startswith(mount) for mount in volumes)


def test_the_compose_health_check_asks_with_an_allowed_host() -> None:
    text = (ROOT / "deploy" / "manifold").read_text()
    healthcheck = text[text.index("  healthcheck)") :]
    assert "MANIFOLD_ALLOWED_HOSTS" in healthcheck
    assert '"Host": host' in healthcheck


def test_the_first_account_step_is_documented() -> None:
    assert "first-account" in (ROOT / "README.md").read_text()
    assert "first-account you@example.com" in (ROOT / "deploy" / "README.md").read_text()
