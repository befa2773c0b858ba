"""Persistent context store: one JSON file per scope under ``<data dir>/context/``.

Writes are debounced like Node-RED's localfilesystem ``flushInterval``: dirty scopes are written
``flush_interval`` seconds after the first change (default ``FLUSH_INTERVAL``, 1 s; Node-RED's is
30 s; 0 writes at every change). A crash (SIGKILL, power cut) loses at most the writes of the
last interval; ``close()`` (engine stop, so SIGTERM too) flushes everything. Every flush is
atomic: temp file, fsync, rename over the old file, fsync of the directory -- a power cut
leaves the old or the new file, never a torn one. Values are JSON plus ``bytes`` (stored as
``{"$bytes": "<base64>"}``); a scope holding something else is reported and its previous file
is kept.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from edge_runner.lib.fsutil import atomic_write_bytes
from edge_runner.runtime.context import ContextStore

log = logging.getLogger("edge_runner.context")

FLUSH_INTERVAL = 1.0


def _encode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    raise TypeError(f"context value of type {type(value).__name__} cannot be persisted")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$bytes" in obj and isinstance(obj["$bytes"], str):
        return base64.b64decode(obj["$bytes"])
    return obj


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, creating its directory when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


class FileContextStore(ContextStore):
    """Context persisted as ``<directory>/<quoted scope key>.json``."""

    def __init__(
        self, directory: str | os.PathLike[str], flush_interval: float = FLUSH_INTERVAL
    ) -> None:
        super().__init__()
        if not flush_interval >= 0:
            raise ValueError(f"flush_interval must be 0 or more seconds, got {flush_interval!r}")
        self.directory = Path(directory)
        self.flush_interval = flush_interval
        self._dirty: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.load()

    def _file(self, key: str) -> Path:
        return self.directory / (quote(key, safe="") + ".json")

    def load(self) -> None:
        """Read every scope file (startup); unreadable files are reported and skipped."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.json")):
            key = unquote(path.name[: -len(".json")])
            try:
                data = json.loads(path.read_text("utf-8"), object_hook=_decode)
            except (OSError, ValueError) as exc:
                log.error("context file %s is unreadable, ignored: %s", path, exc)
                continue
            if isinstance(data, dict):
                self.data(key).update(data)

    def changed(self, key: str) -> None:
        self._dirty.add(key)
        if self.flush_interval == 0:
            self.flush()
            return
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # written outside the loop (tests, shutdown): flush now
                self.flush()
                return
            self._timer = loop.call_later(self.flush_interval, self.flush)

    def flush(self) -> None:
        """Write every dirty scope now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        dirty, self._dirty = self._dirty, set()
        for key in sorted(dirty):
            path = self._file(key)
            data = self.scopes.get(key)
            try:
                if not data:
                    path.unlink(missing_ok=True)
                    continue
                payload = json.dumps(data, default=_encode, allow_nan=True).encode()
                atomic_write(path, payload)
            except (TypeError, ValueError, OSError) as exc:
                log.error("context scope %s not persisted (previous file kept): %s", key, exc)

    async def close(self) -> None:
        self.flush()
