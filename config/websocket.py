"""The websocket protocol the ASGI server runs: uvicorn's sans-I/O one, cut short for a peer
that keeps sending after the application closed the socket.

When an application closes a websocket, uvicorn sends the close frame and then keeps reading,
and parsing, whatever the peer sends for up to 10 s while it waits for the peer's close
frame. A device link closed for flooding (RELIABILITY family 13: 4429, 1009) by a peer that
never reads kept one process parsing 48 000 frames a second for those 10 s, and every other
socket of that process waited (neighbours' heartbeat p99 766 ms -> 11.9 s, ``bench/fleet.py
--flood``). Here the connection is aborted once the peer has sent ``AFTER_CLOSE_BYTES`` past
the close, and the wait for a close reply is shorter.

Every way the platform is served names this class: ``deploy/manifold web`` and ``make run``
pass ``--ws config.websocket:WebSocketProtocol`` to uvicorn; tests and benchmarks do the same.
"""

from __future__ import annotations

from typing import Any, Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

# The uvicorn option that selects this protocol.
WS_OPTION: Final = "config.websocket:WebSocketProtocol"
# What a peer may still send after the application closed: a well-behaved peer sends its close
# frame (and at most what was already in flight).
AFTER_CLOSE_BYTES: Final = 64 * 1024
# How long the server waits for the peer's close frame (uvicorn: 10 s).
CLOSE_TIMEOUT_SECONDS: Final = 3.0


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = CLOSE_TIMEOUT_SECONDS
        self.received_after_close = 0

    def data_received(self, data: bytes) -> None:
        if self.close_sent:
            self.received_after_close += len(data)
            if self.received_after_close > AFTER_CLOSE_BYTES:
                # Not worth parsing: the peer ignores the close. Drop the connection.
                if self.close_timer is not None:
                    self.close_timer.cancel()
                    self.close_timer = None
                self.transport.abort()
                return
        super().data_received(data)
