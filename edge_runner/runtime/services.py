"""Per-engine services (STYLE rule 12): what Home Assistant keeps in ``hass.data``.

Connection pools, the ``http in`` route table and the function watchdog live here, one set per
``Engine``, so two engines in one process (an A/B switch-over) share no live resource. Nodes
reach them through ``NodeApi.services``; the engine closes them when it stops.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TypeVar, cast

log = logging.getLogger("edge_runner.engine")

T = TypeVar("T")


class EngineServices:
    """Services by key, made on first use and closed in reverse order of creation."""

    def __init__(self) -> None:
        self._items: dict[str, object] = {}

    def get(self, key: str, factory: Callable[[], T]) -> T:
        found = self._items.get(key)
        if found is None:
            found = self._items[key] = factory()
        return cast("T", found)

    def peek(self, key: str) -> object | None:
        """The service under ``key`` if one was made (never makes one)."""
        return self._items.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    async def close(self) -> None:
        """Close every service, newest first (a later service may use an earlier one); a
        service that fails to close is logged and the rest still close."""
        items = list(self._items.items())
        self._items.clear()
        for key, item in reversed(items):
            close = getattr(item, "close", None)
            if close is None:
                continue
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("engine service %s failed to close", key)
