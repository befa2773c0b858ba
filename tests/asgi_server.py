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
def serve_asgi(application: Any) -> Iterator[str]:
    """Serve ``application`` on a free loopback port; yield its ``http://`` base URL."""
    import uvicorn
    from channels.layers import channel_layers

    # channels_redis binds its receiving side to one event loop per layer instance; an earlier
    # server's loop (stopped with consumers still registered) would refuse this one's sockets.
    channel_layers.backends.clear()

    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ws="websockets-sansio",
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
