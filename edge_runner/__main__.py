"""Command line: ``python -m edge_runner serve --host H --port P --data-dir D`` (also installed
as the ``edge-runner`` console script; ``--userdir`` is the same option under Node-RED's name).
``register`` and ``run`` are the managed mode's commands (``edge_runner.agent.cli``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from edge_runner.runtime.context_file import FLUSH_INTERVAL as CONTEXT_FLUSH_INTERVAL
from edge_runner.runtime.paths import DEFAULT_ROOT, RunnerPaths

FLUSH_ENV = "EDGE_RUNNER_CONTEXT_FLUSH_INTERVAL"
# Node-RED's localfilesystem default is 30 s; beyond an hour is a typo, not a choice.
MAX_FLUSH_INTERVAL = 3600.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-runner",
        description="Manifold edge runner: runs Node-RED flows.json with Node-RED semantics.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run standalone: Admin API, /comms and http in routes on one port",
        description="Serve the flows stored in DATA_DIR/flows.json on HOST:PORT.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=1880, help="TCP port (default 1880)")
    serve.add_argument(
        "--data-dir",
        "--userdir",
        dest="data_dir",
        default=DEFAULT_ROOT,
        help=f"the runner's data directory: flows.json, credentials, context, models, queues "
        f"(default {DEFAULT_ROOT})",
    )
    serve.add_argument(
        "--credential-secret",
        default=None,
        help="secret that encrypts flows_cred.json (default: "
        "$EDGE_RUNNER_CREDENTIAL_SECRET, else one generated in the data directory)",
    )
    serve.add_argument(
        "--context-flush-interval",
        type=float,
        default=os.environ.get(FLUSH_ENV, CONTEXT_FLUSH_INTERVAL),
        metavar="SECONDS",
        help="seconds between a write to the file context store and its flush to disk: what a "
        f"crash can lose (default ${FLUSH_ENV}, else {CONTEXT_FLUSH_INTERVAL:g}; 0 writes at once)",
    )
    serve.add_argument(
        "--admin-token-file",
        default=None,
        metavar="PATH",
        help="file holding the token the Admin API and /comms require as "
        "Authorization: Bearer <token> (default: $MANIFOLD_RUNNER_ADMIN_TOKEN; without a "
        "token only a loopback --host is accepted)",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a Host name the Admin API accepts besides loopback ones (repeatable; also "
        "comma-separated in $MANIFOLD_RUNNER_ALLOWED_HOSTS)",
    )
    serve.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop (auto: uvloop when installed)",
    )
    serve.add_argument(
        "--log-level",
        default=os.environ.get("EDGE_RUNNER_LOG_LEVEL", "warning"),
        choices=("debug", "info", "warning", "error"),
    )
    from edge_runner.agent.cli import add_commands

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command != "serve":
        from edge_runner.agent.cli import run_command

        return run_command(args)
    if not 0 < args.port < 65536:
        sys.stderr.write(f"edge-runner: --port must be 1-65535, got {args.port}\n")
        return 2
    if not 0 <= args.context_flush_interval <= MAX_FLUSH_INTERVAL:
        sys.stderr.write(
            f"edge-runner: --context-flush-interval must be 0-{MAX_FLUSH_INTERVAL:g} seconds, "
            f"got {args.context_flush_interval:g}\n"
        )
        return 2
    from edge_runner.runtime.admin_guard import AdminGuardError, hosts_from, token_from
    from edge_runner.runtime.server import Server, run
    from edge_runner.runtime.storage import StorageError

    paths = RunnerPaths.at(args.data_dir)
    try:
        server = Server(
            args.host,
            args.port,
            paths,
            args.credential_secret,
            admin_token=token_from(args.admin_token_file, os.environ),
            allowed_hosts=hosts_from(args.allowed_host, os.environ),
            context_flush_interval=args.context_flush_interval,
        )
    except AdminGuardError as exc:
        sys.stderr.write(f"edge-runner: {exc}\n")
        return 2
    try:
        run(server, args.loop)
    except OSError as exc:
        sys.stderr.write(f"edge-runner: cannot serve on {args.host}:{args.port}: {exc}\n")
        return 1
    except StorageError as exc:
        sys.stderr.write(f"edge-runner: {exc}\n")
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
