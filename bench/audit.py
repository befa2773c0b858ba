#!/usr/bin/env python3
"""Audit writes at fleet rate: 8 writer processes on PostgreSQL, old path against new.

    .venv/bin/python bench/audit.py [--seconds 10] [--writers 8] [--database-url URL]

Each writer is its own process with its own connection; each event is one transaction with one
``audit_record`` (the worst case: nothing else in the transaction to hide the audit cost).
Two scenarios, each run with both paths on a freshly migrated database:

* ``one team``: every writer writes into the same team's chain (the worst case);
* ``8 teams``: writer i writes into team i.

Paths: ``inline`` is the old path (every writer locks the chain head for its whole transaction,
``AUDIT_SEALING = "inline"``); ``deferred`` appends unsealed rows and lets one sealer per chain
seal them in batches. Printed per run: events committed per second by all writers together,
how many were still unsealed when the writers stopped, and how long the backlog took to seal.
``manage.py audit_verify`` runs at the end and must be clean (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/manifold_audit_bench"
TEAM_BASE = 880000


@dataclass(frozen=True)
class _Team:
    pk: int
    slug: str


@dataclass(frozen=True)
class RunResult:
    path: str
    scenario: str
    events: int
    seconds: float
    unsealed_at_stop: int
    drain_seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def _setup_django(database_url: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["MANIFOLD_DATABASE_URL"] = database_url
    # Team events go to the channel layer on commit: Redis, as in production.
    os.environ.setdefault("MANIFOLD_REDIS_URL", "redis://127.0.0.1:6379/7")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    import django

    django.setup()


def _writer(
    database_url: str,
    path: str,
    team_key: int,
    index: int,
    seconds: float,
    start: Event,
    ready: Any,
    results: Any,
) -> None:
    _setup_django(database_url)
    from django.conf import settings
    from django.db import transaction

    from apps.accounts.principal import Principal
    from apps.audit.services import audit_record

    settings.AUDIT_SEALING = path
    # No channel layer: team-event broadcasts cost the same on both paths (~50 ms per event
    # through Redis on a loaded box) and would hide the difference being measured.
    settings.CHANNEL_LAYERS = {}
    team = _Team(team_key, f"bench-{team_key}")
    principal = Principal.system("bench")
    ready.put(index)
    start.wait()
    deadline = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < deadline:
        with transaction.atomic():
            audit_record(
                event="bench.device.reported",
                principal=principal,
                team=team,
                after={"writer": index, "n": count},
            )
        count += 1
    results.put(count)
    # This process's sealer seals what it was nudged for before the process ends (atexit).


def _recreate_database(database_url: str) -> None:
    """A freshly migrated, empty database: migrated once, then copied from a template."""
    import psycopg
    from django.core.management import call_command
    from django.db import connections

    connections.close_all()
    name = database_url.rsplit("/", 1)[1]
    template = f"{name}_template"
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template])
        if found.fetchone():
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return
        admin.execute(f'CREATE DATABASE "{name}"')
    call_command("migrate", verbosity=0)
    connections.close_all()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{template}" TEMPLATE "{name}"')


def drop_template(database_url: str) -> None:
    """The template is this run's migrations; a later run (other code) migrates afresh."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}_template" WITH (FORCE)')


def run(database_url: str, path: str, teams: int, writers: int, seconds: float) -> RunResult:
    from apps.audit.models import AuditEvent
    from apps.audit.sealing import audit_seal_pending

    _recreate_database(database_url)
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    ready, results = context.Queue(), context.Queue()
    processes = [
        context.Process(
            target=_writer,
            args=(
                database_url,
                path,
                TEAM_BASE + index % teams,
                index,
                seconds,
                start,
                ready,
                results,
            ),
        )
        for index in range(writers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=300)  # every writer has set Django up and waits at the start line
    started = time.perf_counter()
    start.set()
    counts = [results.get(timeout=seconds + 120) for _ in processes]
    elapsed = time.perf_counter() - started
    unsealed = AuditEvent.objects.filter(seq__isnull=True).count()
    drain_started = time.perf_counter()
    audit_seal_pending(wait=True)
    drain = time.perf_counter() - drain_started
    for process in processes:
        process.join(60)
    scenario = "one team" if teams == 1 else f"{teams} teams"
    return RunResult(path, scenario, sum(counts), elapsed, unsealed, drain)


def verify() -> bool:
    from django.core.management import CommandError, call_command

    try:
        call_command("audit_verify", stdout=sys.stdout, stderr=sys.stderr)
    except CommandError as error:
        print(f"audit_verify: {error}", file=sys.stderr)
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--paths", default="inline,deferred", help="inline, deferred or both")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per scenario and path, paths alternating"
    )
    args = parser.parse_args()
    _setup_django(args.database_url)
    from django.db import connection

    if connection.vendor != "postgresql":
        parser.error("the benchmark needs PostgreSQL (--database-url postgres://...)")
    paths = [path.strip() for path in args.paths.split(",") if path.strip()]
    results: list[RunResult] = []
    clean = True
    drop_template(args.database_url)
    try:
        for teams in (1, args.writers):
            for _ in range(args.repeats):
                for path in paths:
                    result = run(args.database_url, path, teams, args.writers, args.seconds)
                    results.append(result)
                    print(
                        f"{result.scenario:>9} {result.path:>8}: {result.events} events in "
                        f"{result.seconds:.1f} s = {result.rate:.0f} events/s; "
                        f"{result.unsealed_at_stop} unsealed at stop, sealed "
                        f"{result.drain_seconds:.2f} s later",
                        flush=True,
                    )
                    clean = verify() and clean
    finally:
        drop_template(args.database_url)
    print(
        f"\n{args.writers} writer processes, {args.seconds:.0f} s per run, {args.repeats} runs "
        "each (paths alternating), PostgreSQL; median (min-max)"
    )
    print("| scenario | path | events/s | unsealed at stop | backlog sealed in |")
    print("|---|---|---|---|---|")
    for scenario in dict.fromkeys(result.scenario for result in results):
        for path in paths:
            runs = [r for r in results if r.scenario == scenario and r.path == path]
            rates = sorted(r.rate for r in runs)
            print(
                f"| {scenario} | {path} | {statistics.median(rates):.0f} "
                f"({rates[0]:.0f}-{rates[-1]:.0f}) | "
                f"{statistics.median(r.unsealed_at_stop for r in runs):.0f} | "
                f"{statistics.median(r.drain_seconds for r in runs):.2f} s |"
            )
    print("audit_verify: clean" if clean else "audit_verify: BROKEN")
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
