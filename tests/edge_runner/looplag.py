"""Measure how late the event loop runs a 1 ms timer while a test works (figures, never a
timed assertion: the box is shared)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType


class LoopLag:
    """``async with LoopLag() as lag: ...`` then ``lag.max_ms``, ``lag.p99_ms``."""

    def __init__(self, period: float = 0.001) -> None:
        self.period = period
        self.lags: list[float] = []
        self.worst_at = 0.0  # seconds after the start when the longest lag ended
        self._started = 0.0
        self._worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.period)
            lag = time.perf_counter() - before - self.period
            if lag > self._worst:
                self._worst = lag
                self.worst_at = time.perf_counter() - self._started
            self.lags.append(lag)

    async def __aenter__(self) -> LoopLag:
        self._started = time.perf_counter()
        self._task = asyncio.get_running_loop().create_task(self._probe())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.lags.sort()

    @property
    def max_ms(self) -> float:
        return self.lags[-1] * 1000 if self.lags else 0.0

    @property
    def p99_ms(self) -> float:
        return self.lags[int(len(self.lags) * 0.99)] * 1000 if self.lags else 0.0

    def __str__(self) -> str:
        return (
            f"loop lag max {self.max_ms:.1f} ms (at {self.worst_at:.1f} s), "
            f"p99 {self.p99_ms:.1f} ms ({len(self.lags)} probes)"
        )
