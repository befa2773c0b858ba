"""The real ASGI app under uvicorn in a thread of the test process (shares the test database)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_asgi(application: Any, port: int | None = None) -> Iterator[str]:
    """Serve ``application`` on ``port`` (default: a free loopback port); yield its ``http://``
    base URL. Serving again on the same port is a platform coming back after an outage."""
    import uvicorn
    from channels.layers import channel_layers

    from config.websocket import WS_OPTION

    # channels_redis binds its receiving side to one event loop per layer instance; an earlier
    # server's loop (stopped with consumers still registered) would refuse this one's sockets.
    channel_layers.backends.clear()

    port = port or free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ws=WS_OPTION,  # the production protocol
        # Thousands of sockets in one test: uvicorn's default backlog (2048) is the limit.
        backlog=4096,
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 10 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        instance.should_exit = True
        thread.join(timeout=30)


@contextmanager
def serve_processes(count: int, env: dict[str, str]) -> Iterator[list[str]]:
    """``count`` uvicorn processes of ``config.asgi``, as ``deploy/manifold web`` starts them.

    ``env`` replaces every ``MANIFOLD_*`` variable of this process (and may name the settings
    module); yields the processes' ``http://`` base URLs once each answers ``/healthz``.
    """
    import os
    import subprocess
    import urllib.request
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MANIFOLD_")}
    ports = [free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [str(root / "deploy" / "manifold"), "web", "--host", "127.0.0.1", "--port", str(port),
             "--forwarded-allow-ips", "127.0.0.1", "--log-level", "warning", "--backlog", "4096"],
            cwd=root,
            env={**clean, **env},
        )
        for port in ports
    ]  # fmt: skip
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    host = env.get("MANIFOLD_ALLOWED_HOSTS", "127.0.0.1").split(",")[0]
    try:
        for base in bases:
            deadline = time.monotonic() + 60
            probe = urllib.request.Request(  # noqa: S310  # loopback
                f"{base}/healthz", headers={"Host": host, "X-Forwarded-Proto": "https"}
            )
            while True:
                try:
                    with urllib.request.urlopen(probe, timeout=2):  # noqa: S310  # loopback
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{base} did not answer within 60 s") from None
                    time.sleep(0.2)
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
