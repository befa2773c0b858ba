"""Node, flow and global context (the in-memory store; the persistent file store builds on it)."""

from __future__ import annotations

from typing import Any

from edge_runner.contract import get_property, parse_path, set_property


class ContextStore:
    """Holds one dict per scope key (``node:<id>``, ``flow:<tab id>``, ``global``)."""

    def __init__(self) -> None:
        self.scopes: dict[str, dict[str, Any]] = {}

    def scope(self, key: str) -> Context:
        return Context(self, key)

    def data(self, key: str) -> dict[str, Any]:
        found = self.scopes.get(key)
        if found is None:
            found = self.scopes[key] = {}
        return found

    def changed(self, key: str) -> None:
        """Hook for persistent stores: a scope was written."""

    def drop(self, key: str) -> None:
        self.scopes.pop(key, None)
        self.changed(key)

    async def close(self) -> None:
        """Flush and release; the memory store has nothing to do."""


class Context:
    """What flows see as ``context`` / ``flow`` / ``global``: ``get``, ``set``, ``keys``."""

    __slots__ = ("_data", "_key", "_store")

    def __init__(self, store: ContextStore, key: str) -> None:
        self._store = store
        self._key = key
        self._data = store.data(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key in self._data:
            return self._data[key]
        if "." in key or "[" in key:
            return get_property(self._data, key, default)
        return default

    def set(self, key: str, value: Any = None) -> None:
        if "." in key or "[" in key:
            parts = parse_path(key)
            if value is None:
                parent = get_property(self._data, parts[:-1]) if len(parts) > 1 else self._data
                if isinstance(parent, dict):
                    parent.pop(str(parts[-1]), None)
            else:
                set_property(self._data, parts, value)
        elif value is None:
            self._data.pop(key, None)
        else:
            self._data[key] = value
        self._store.changed(self._key)

    def keys(self) -> list[str]:
        return list(self._data.keys())
