"""The managed-mode commands of ``edge-runner``: ``register`` and ``run``.

    edge-runner register --url URL --token TOKEN --data-dir DIR [--name N] [--ca-file F] [--force]
    edge-runner run --data-dir DIR [--port 1880] [--status-port 1879] [--memory-limit 512M]

Exit status: 0 done, 1 refused or failed (the message says why), 2 a usage error or a data
directory that is not registered (a service manager should not restart into that).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from typing import Any

from edge_runner.agent.identity import Identity, IdentityError
from edge_runner.agent.main import DEFAULT_PORT, DEFAULT_STATUS_PORT, Agent
from edge_runner.runtime.paths import DEFAULT_ROOT, RunnerPaths

TOKEN_ENV = "EDGE_RUNNER_REGISTRATION_TOKEN"  # noqa: S105  # the name of a variable
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGkmg]?)(?:i?[Bb])?\s*$")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# Below this an engine cannot start at all: a typo, not a choice.
MIN_MEMORY_LIMIT = 64 * 1024**2


class UsageError(ValueError):
    pass


def memory_limit(text: str | None) -> int | None:
    """``512M`` / ``1G`` / ``536870912`` as bytes (``None``/``0``/``none``: no limit)."""
    if text is None or text.strip().lower() in ("", "0", "none"):
        return None
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"--memory-limit must be a size like 512M or 1G, got {text!r}")
    size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if size < MIN_MEMORY_LIMIT:
        raise UsageError(f"--memory-limit must be at least 64M, got {text!r}")
    return size


def _common(parser: argparse.ArgumentParser, log_level: str) -> None:
    parser.add_argument(
        "--data-dir",
        "--userdir",
        dest="data_dir",
        default=DEFAULT_ROOT,
        help=f"the runner's data directory (default {DEFAULT_ROOT})",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("EDGE_RUNNER_LOG_LEVEL", log_level),
        choices=("debug", "info", "warning", "error"),
    )


def add_commands(sub: Any) -> None:
    """Add ``register`` and ``run`` to the ``edge-runner`` subcommands."""
    register = sub.add_parser(
        "register",
        help="register this device with the platform (managed mode)",
        description="Make this device's key pair, register it with a provisioning token or "
        "registration code, and keep its identity under DATA_DIR/device/.",
    )
    register.add_argument("--url", required=True, help="the platform's address (https://…)")
    register.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"provisioning token (mft_…) or registration code (MFR-…) (default ${TOKEN_ENV})",
    )
    _common(register, "warning")
    register.add_argument("--name", default=None, help="the device's name on the platform")
    register.add_argument(
        "--ca-file", default=None, help="PEM file of the CA that signed the platform's certificate"
    )
    register.add_argument(
        "--force", action="store_true", help="replace an identity this data directory holds"
    )
    run = sub.add_parser(
        "run",
        help="run as a managed device: the engine, the platform link and the status page",
        description="Run the engine as a supervised child, keep the link to the platform and "
        "serve the read-only status page on loopback.",
    )
    _common(run, "info")
    run.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"the engine's port (default {DEFAULT_PORT})"
    )
    run.add_argument(
        "--status-port",
        type=int,
        default=DEFAULT_STATUS_PORT,
        help=f"the status page's loopback port (default {DEFAULT_STATUS_PORT})",
    )
    run.add_argument(
        "--memory-limit",
        default=None,
        help="the engine's memory limit, e.g. 512M (default: none)",
    )


def _fail(command: str, message: str, status: int) -> int:
    sys.stderr.write(f"edge-runner {command}: {message}\n")
    return status


def run_command(args: argparse.Namespace) -> int:
    """Run ``register`` or ``run``; answers the exit status."""
    paths = RunnerPaths.at(args.data_dir)
    if args.command == "register":
        if not args.token:
            return _fail("register", f"--token is required (or set ${TOKEN_ENV})", 2)
        try:
            identity = asyncio.run(
                Identity.register(
                    args.url,
                    args.token,
                    paths,
                    args.name,
                    ca_file=args.ca_file,
                    force=args.force,
                )
            )
        except IdentityError as exc:
            return _fail("register", str(exc), 1)
        sys.stdout.write(
            f"registered as device {identity.device_id} ({identity.name or 'unnamed'}) of team "
            f"{identity.team} at {identity.platform_url}; start it with "
            f"`edge-runner run --data-dir {paths.root}`\n"
        )
        return 0
    try:
        limit = memory_limit(args.memory_limit)
        for option, port in (("--port", args.port), ("--status-port", args.status_port)):
            if not 0 < port < 65536:
                raise UsageError(f"{option} must be 1-65535, got {port}")
        if args.port == args.status_port:
            raise UsageError("--port and --status-port must differ")
        Identity.load(paths)
    except UsageError as exc:
        return _fail("run", str(exc), 2)
    except IdentityError as exc:
        return _fail("run", str(exc), 2)
    agent = Agent(paths, port=args.port, status_port=args.status_port, memory_limit_bytes=limit)
    try:
        return asyncio.run(agent.run())
    except IdentityError as exc:
        return _fail("run", str(exc), 2)
    except OSError as exc:
        return _fail("run", f"cannot start: {exc}", 1)
