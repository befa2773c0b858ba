"""A real Celery worker process: tasks published here run there; its group_send reaches us.

Runs on the embedded defaults (filesystem broker, SQLite channel layer) and, when
MANIFOLD_REDIS_URL is set, on Redis for both.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.test import override_settings

from apps.core.realtime import team_group_name
from config.celery import app as celery_app
from tests.config.celery_probe_tasks import probe_broadcast_task, probe_touch_task

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _filesystem_options(var_dir: Path) -> dict[str, Any]:
    queue = var_dir / "celery" / "queue"
    # Both ends create the folders (config.celery does it on configure); the worker may lag.
    queue.mkdir(parents=True, exist_ok=True)
    (var_dir / "celery" / "processed").mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "processed_folder": str(var_dir / "celery" / "processed"),
        "control_folder": str(var_dir / "celery" / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Start ``celery worker`` on a private queue and var folder; yield (queue, transport opts)."""
    queue = f"probe-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "MANIFOLD_VAR_DIR": str(tmp_path),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--hostname",
            f"{queue}@localhost",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--include",
            "tests.config.celery_probe_tasks",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    options = _filesystem_options(tmp_path) if not settings.REDIS_URL else {}
    previous_eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield queue, options
    finally:
        celery_app.conf.task_always_eager = previous_eager
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _wait_for(path: Path, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"the worker did not run the task within {seconds} s")


def test_task_published_here_runs_in_the_worker_process(
    worker: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    queue, options = worker
    with celery_app.connection_for_write(transport_options=options) as connection:
        first = tmp_path / "first.txt"
        probe_touch_task.apply_async((str(first), time.time()), queue=queue, connection=connection)
        _wait_for(first, 60)  # includes worker start-up
        delays = []
        for number in range(5):
            marker = tmp_path / f"warm-{number}.txt"
            started = time.time()
            probe_touch_task.apply_async((str(marker), started), queue=queue, connection=connection)
            _wait_for(marker, 10)
            delays.append(time.time() - started)
    print(
        f"celery worker round trip (warm): best {min(delays) * 1000:.0f} ms, "
        f"worst {max(delays) * 1000:.0f} ms over {len(delays)}"
    )
    assert max(delays) < 5


def test_broadcast_from_the_worker_reaches_this_process(
    worker: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    queue, options = worker
    layers: dict[str, Any] = settings.CHANNEL_LAYERS
    if not settings.REDIS_URL:
        # The worker's SQLite layer lives under its MANIFOLD_VAR_DIR: point ours at the same file.
        default: dict[str, Any] = layers["default"]
        file_name = Path(default["CONFIG"]["path"]).name
        layers = {
            "default": {
                "BACKEND": default["BACKEND"],
                "CONFIG": {**default["CONFIG"], "path": str(tmp_path / "test" / file_name)},
            }
        }
    team_id = 900_000_000 + uuid.uuid4().int % 1_000_000
    group = team_group_name(team_id)

    async def listen() -> float:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        with celery_app.connection_for_write(transport_options=options) as connection:
            probe_broadcast_task.apply_async(
                (team_id, time.time()), queue=queue, connection=connection
            )
        message = await asyncio.wait_for(layer.receive(channel), 60)
        await layer.group_discard(group, channel)
        assert message["type"] == "team.event"
        assert message["kind"] == "probe.ping"
        return time.time() - float(message["payload"]["sent_at"])

    with override_settings(CHANNEL_LAYERS=layers):
        elapsed = asyncio.run(listen())
    print(
        f"task -> worker -> broadcast_team_event -> this process: {elapsed * 1000:.0f} ms"
        " (incl. worker start-up)"
    )
