"""``manage.py hosted_runners``: the reconciler of hosted instances (one per installation).

Every ``--interval`` seconds (2) it compares what the database wants (``HostedInstance`` rows:
desired running, device not decommissioned) with the processes the driver holds, and acts:
starts what should run (registering a new data directory first), restarts crashed runners with
exponential backoff (1 s doubling to 60 s; reset once a runner has stayed up 60 s), stops what
should not run, and discards the processes and data of deleted devices. It writes what it saw to
the rows (``state``, ``restarts``, ``last_error``) only when that changes.

On SIGTERM/SIGINT it stops its runners (SIGTERM, a shared grace period, SIGKILL) and exits. A
reconciler killed outright leaves its runners running; the next one adopts them through their
pid files (or stops them if they should no longer run). A lock file keeps a second reconciler
on the same directory from starting.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shlex
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from apps.devices.hosting import HostingDriver, HostingError, InstanceSpec, LocalProcessDriver
from apps.devices.models import HostedInstance
from apps.devices.services.hosting import (
    hosted_instance_observe,
    hosted_instances_for_reconciler,
    hosted_registration_code,
    hosted_should_run,
)

logger = logging.getLogger("apps.devices.hosting")

BACKOFF_FIRST: Final = 1.0
BACKOFF_MAX: Final = 60.0
HEALTHY_AFTER: Final = 60.0


@dataclass
class _Backoff:
    failures: int = 0
    next_attempt: float = 0.0
    started: float | None = None


class Reconciler:
    """One pass at a time (``tick``); the command loops it."""

    def __init__(
        self,
        driver: HostingDriver,
        platform_url: str,
        *,
        backoff_first: float = BACKOFF_FIRST,
        backoff_max: float = BACKOFF_MAX,
        healthy_after: float = HEALTHY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.driver = driver
        self.platform_url = platform_url
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.healthy_after = healthy_after
        self.clock = clock
        self.restarts: dict[str, int] = {}
        self._backoff: dict[str, _Backoff] = {}

    def tick(self) -> None:
        rows = {str(row.device_id): row for row in hosted_instances_for_reconciler()}
        wanted = {name: row for name, row in rows.items() if hosted_should_run(row)}
        for name in self.driver.instances():
            if name not in rows:
                logger.info("hosted %s: its device is gone; stopping it, removing its data", name)
                self.driver.discard(name)
                self._forget(name)
            elif name not in wanted:
                logger.info("hosted %s: should not run; stopping it", name)
                self.driver.stop(name)
                self._forget(name)
        for name, row in rows.items():
            if name in wanted:
                self._keep_running(name, row)
            else:
                hosted_instance_observe(row.pk, state="stopped", restart_done=True)

    def _keep_running(self, name: str, row: HostedInstance) -> None:
        now = self.clock()
        backoff = self._backoff.setdefault(name, _Backoff())
        status = self.driver.status(name)
        if row.restart_requested and status.state == "running":
            logger.info("hosted %s: restart requested", name)
            self.driver.stop(name)
            hosted_instance_observe(row.pk, state="stopped", restart_done=True)
            status = self.driver.status(name)
            backoff.failures, backoff.next_attempt = 0, 0.0
        if status.state == "running":
            if backoff.started is not None and now - backoff.started >= self.healthy_after:
                backoff.failures = 0
            hosted_instance_observe(row.pk, state="running")
            return
        if status.state == "exited":
            reason = status.detail
            tail = self.driver.logs(name, 1)
            if tail:
                reason = f"{reason}: {tail[-1]}"
            logger.warning("hosted %s: %s", name, reason)
            self.driver.stop(name)  # reap it, drop its pid file
            self._failed(name, row, backoff, now, reason, "crashed")
        if now < backoff.next_attempt:
            return
        spec = InstanceSpec(
            instance_id=name,
            name=row.device.name,
            platform_url=self.platform_url,
            port=row.port,
            status_port=row.status_port,
            registration_code=lambda: hosted_registration_code(row.device_id),
        )
        try:
            started = self.driver.start(spec)
        except HostingError as exc:
            logger.warning("hosted %s: cannot start: %s", name, exc)
            self._failed(name, row, backoff, now, str(exc), "failed")
            return
        backoff.started = now
        logger.info("hosted %s: running (pid %s, port %s)", name, started.pid, row.port)
        hosted_instance_observe(
            row.pk,
            state="running",
            restarts=self.restarts.get(name, 0),
            restart_done=True,
        )

    def _failed(
        self, name: str, row: HostedInstance, backoff: _Backoff, now: float, reason: str, state: str
    ) -> None:
        delay = min(self.backoff_max, self.backoff_first * 2**backoff.failures)
        backoff.failures += 1
        backoff.next_attempt = now + delay
        backoff.started = None
        self.restarts[name] = self.restarts.get(name, 0) + 1
        hosted_instance_observe(
            row.pk, state=state, restarts=self.restarts[name], last_error=reason
        )

    def _forget(self, name: str) -> None:
        self._backoff.pop(name, None)
        self.restarts.pop(name, None)

    def shutdown(self) -> None:
        """Stop every runner this driver holds (the reconciler is going away)."""
        names = self.driver.instances()
        stop_many = getattr(self.driver, "stop_many", None)
        if callable(stop_many):
            stop_many(names)
        else:
            for name in names:
                self.driver.stop(name)


@contextlib.contextmanager
def exclusive(root: Path) -> Any:
    """Hold ``root/.reconciler.lock`` or fail: two reconcilers would fight over the runners."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(root / ".reconciler.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CommandError(f"Another hosted_runners holds {root}/.reconciler.lock.") from None
        yield


class Command(BaseCommand):
    help = "Run the hosted instances' reconciler (starts, restarts and stops hosted runners)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=2.0)
        parser.add_argument(
            "--platform-url",
            default=settings.HOSTED_PLATFORM_URL,
            help="the address hosted runners register and link against "
            "(default $MANIFOLD_HOSTED_PLATFORM_URL)",
        )
        parser.add_argument(
            "--root",
            default=None,
            help="where instances live (default $MANIFOLD_HOSTED_ROOT, <VAR_DIR>/hosted)",
        )
        parser.add_argument(
            "--runner-command",
            default=None,
            help="the runner command, before its subcommand (default: python -m edge_runner)",
        )
        parser.add_argument("--once", action="store_true", help="one pass, then exit")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["interval"] <= 0:
            raise CommandError("--interval must be positive.")
        root = Path(options["root"] or settings.HOSTED_ROOT)
        command = shlex.split(options["runner_command"]) if options["runner_command"] else None
        driver = LocalProcessDriver(root, command, cwd=Path(settings.BASE_DIR))
        reconciler = Reconciler(driver, options["platform_url"])
        stop = threading.Event()

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            logger.info("hosted_runners: %s, stopping the runners", signal.Signals(signum).name)
            stop.set()

        with exclusive(root):
            signal.signal(signal.SIGTERM, request_stop)
            signal.signal(signal.SIGINT, request_stop)
            self.stdout.write(f"hosted_runners: {root}, platform {options['platform_url']}")
            while not stop.is_set():
                close_old_connections()
                try:
                    reconciler.tick()
                except Exception:
                    # The database may be away for a moment; the runners keep running meanwhile.
                    logger.exception("hosted_runners: a pass failed; trying again")
                if options["once"]:
                    return
                stop.wait(options["interval"])
            reconciler.shutdown()
            self.stdout.write("hosted_runners: stopped")
