"""Node, flow and global context: named stores (Node-RED's ``contextStorage``) with a default.

``ContextStore`` is the in-memory store; ``FileContextStore`` (``context_file.py``) persists
each scope as JSON. ``ContextStores`` holds the named stores an engine uses, e.g.
``ContextStores({"default": ContextStore(), "file": FileContextStore(path)}, default="file")``.
Scope keys: ``node:<id>``, ``flow:<tab or subflow instance id>``, ``global``.

Keys may name their store as Node-RED's typed inputs write them, ``#:(file)::counter``; every
read and write honours it (``RED.util.parseContextStore``). A store name that is not configured
falls back to the default store with a warning, once per name, as in Node-RED.
"""

from __future__ import annotations

import logging
from typing import Any

from edge_runner.contract import get_property, parse_path, set_property
from edge_runner.lib.context_keys import STORE_PREFIX, parse_context_store

log = logging.getLogger("edge_runner.context")

PARENT = "$parent."


class ContextStore:
    """Holds one dict per scope key. Values are kept as given (no copy), like Node-RED's
    memory store."""

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

    def clean(self, active_keys: set[str]) -> None:
        """Forget node and flow scopes that no deployed node uses any more (global stays)."""
        for key in [k for k in self.scopes if k != "global" and k not in active_keys]:
            self.drop(key)

    async def open(self) -> None:
        """Load persisted data; the memory store has none."""

    async def close(self) -> None:
        """Flush and release; the memory store has nothing to do."""


class ContextStores:
    """The named stores of one engine; ``default`` names the store used when none is given."""

    def __init__(
        self, stores: dict[str, ContextStore] | None = None, default: str = "default"
    ) -> None:
        self.stores = stores or {"default": ContextStore()}
        if default not in self.stores:
            raise ValueError(f"default context store {default!r} is not configured")
        self.default_name = default
        self.default = self.stores[default]
        self._unknown: set[str] = set()

    def get(self, name: str | None) -> ContextStore:
        """The store called ``name``; the default one for None, "default" or an unknown name
        (warned about once per name, like Node-RED)."""
        if name is None:
            return self.default
        store = self.stores.get(name)
        if store is not None:
            return store
        if name != "default" and name not in self._unknown:
            self._unknown.add(name)
            log.warning("Unknown context store '%s' specified. Using default store.", name)
        return self.default

    def clean(self, active_keys: set[str]) -> None:
        for store in self.stores.values():
            store.clean(active_keys)

    async def open(self) -> None:
        for store in self.stores.values():
            await store.open()

    async def close(self) -> None:
        for store in self.stores.values():
            await store.close()


class Context:
    """What flows see as ``context`` / ``flow`` / ``global_``: ``get``, ``set``, ``keys``.

    ``store=`` picks a named store (Node-RED's third argument); without it a ``#:(store)::``
    prefix of the key does, else the default store is used. Dotted keys (``a.b[0]``) read and
    write nested values. Inside a subflow, flow context keys starting with ``$parent.`` read
    and write the parent flow's context (a tab's flow context has no parent: such reads give
    None and writes do nothing, as in Node-RED).
    """

    __slots__ = ("_data", "_key", "_store", "_stores", "parent")

    def __init__(
        self,
        store: ContextStore,
        key: str,
        stores: ContextStores | None = None,
        parent: Context | None = None,
    ) -> None:
        self._store = store
        self._key = key
        self._data = store.data(key)
        self._stores = stores
        self.parent = parent

    def _other(self, store: str) -> Context:
        if self._stores is None:  # a lone store: every name means it
            return self
        target = self._stores.get(store)
        if target is self._store:
            return self
        return Context(target, self._key, self._stores, self.parent)

    def _up(self, key: str) -> tuple[Context | None, str]:
        """Follow ``$parent.`` prefixes: the context and key they lead to."""
        ctx: Context | None = self
        while ctx is not None and key.startswith(PARENT):
            ctx, key = ctx.parent, key[len(PARENT) :]
        return ctx, key

    def get(self, key: str, default: Any = None, store: str | None = None) -> Any:
        data = self._data
        if store is None and key in data:
            return data[key]
        if key.startswith(STORE_PREFIX):
            named, key = parse_context_store(key)
            store = store or named
        if key.startswith(PARENT):
            ctx, rest = self._up(key)
            return ctx.get(rest, default, store) if ctx is not None and rest else default
        if store is not None:
            return self._other(store).get(key, default)
        if "." in key or "[" in key:
            return get_property(data, key, default)
        return default

    def set(self, key: str, value: Any = None, store: str | None = None) -> None:
        if key.startswith(STORE_PREFIX):
            named, key = parse_context_store(key)
            store = store or named
        if key.startswith(PARENT):
            ctx, rest = self._up(key)
            if ctx is not None and rest:
                ctx.set(rest, value, store)
            return
        if store is not None:
            self._other(store).set(key, value)
            return
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

    def keys(self, store: str | None = None) -> list[str]:
        if store is not None:
            return self._other(store).keys()
        return list(self._data.keys())
