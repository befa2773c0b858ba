"""The runner's one retry schedule: exponential backoff with full jitter.

Every reconnect and retry in the runner (shared connections, the historian, outbox disk errors)
waits ``random.uniform(0, min(cap, base * 2**attempt))`` seconds, ``attempt`` counting failures
since the last success. Full jitter (AWS architecture blog, "Exponential Backoff And Jitter")
spreads a fleet that lost the same peer at the same moment over the whole window instead of
retrying in lock step, so a restarted broker or database sees a flat arrival rate.
"""

from __future__ import annotations

import random

# The smallest pause: a zero draw must not turn into a busy loop against a dead peer.
FLOOR = 0.01


class Backoff:
    """Full-jitter exponential delays from ``base`` seconds, capped at ``cap`` seconds.

    ``next_delay()`` returns the pause before the next attempt and counts the failure;
    ``reset()`` after a success starts the schedule over."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        if base <= 0 or cap <= 0:
            raise ValueError(f"backoff base and cap must be positive, got {base} and {cap}")
        self.base = base
        self.cap = max(base, cap)
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311  # timing spread, not cryptography

    def window(self) -> float:
        """The upper bound of the next delay."""
        # the exponent stops growing once the cap is reached, so it never overflows
        return min(self.cap, self.base * 2.0 ** min(self.attempt, 64))

    def next_delay(self) -> float:
        delay = max(FLOOR, self._rng.uniform(0, self.window()))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
