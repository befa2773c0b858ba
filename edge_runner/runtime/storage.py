"""The userdir's flows file: ``flows.json`` written atomically, and its revision.

A write is temp file + fsync + rename + fsync(directory): after a power cut the file holds the
old flows or the new ones, never a torn mix (RELIABILITY.md family 15).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from edge_runner.lib.fsutil import atomic_write_bytes, fsync_dir

# One-step replacement; kept under this name for the modules that import it from here.
atomic_write = atomic_write_bytes

log = logging.getLogger("edge_runner.storage")

FLOWS_FILE = "flows.json"


class StorageError(Exception):
    """The flows file exists but cannot be used (unreadable, not JSON, not an array)."""


def serialize_flows(flows: list[Any]) -> bytes:
    """Compact JSON like Node-RED's ``JSON.stringify(flows)``; the revision hashes these bytes."""
    return json.dumps(flows, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def revision(data: bytes) -> str:
    """Node-RED's ``rev``: SHA-256 hex of the serialized flows (``[]`` gives ``4f53cd...``)."""
    return hashlib.sha256(data).hexdigest()


class PendingWrite:
    """A new version of a file, written and fsynced to a temp file but not yet in place."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path = path
        self.tmp = path.parent / f".{path.name}.{os.getpid()}.{id(self):x}.tmp"
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            self.abort()
            raise
        os.close(fd)

    def commit(self) -> None:
        """Rename over the real file and fsync the directory (the rename is then durable)."""
        try:
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        fsync_dir(self.path.parent)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


class FlowStorage:
    """Reads and writes ``<userdir>/flows.json``; keeps the current bytes and revision."""

    def __init__(self, userdir: str | os.PathLike[str]) -> None:
        self.userdir = Path(userdir)
        self.path = self.userdir / FLOWS_FILE
        self.data = b"[]"
        self.rev = revision(self.data)
        self.flows: list[Any] = []

    def load(self) -> list[Any]:
        """Load the stored flows (``[]`` when there is no file yet).

        A file that cannot be used is copied aside as ``flows.json.broken-<time>`` (so nothing a
        user wrote is lost) and ``StorageError`` is raised; the caller starts with no flows.
        """
        self.userdir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temp_files()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self.flows
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from exc
        try:
            flows = json.loads(raw) if raw.strip() else []
        except ValueError as exc:
            self._keep_broken(raw)
            raise StorageError(f"{self.path} is not valid JSON: {exc}") from exc
        if not isinstance(flows, list):
            self._keep_broken(raw)
            raise StorageError(f"{self.path} does not hold a JSON array of nodes")
        self.flows = flows
        self.data = serialize_flows(flows)
        self.rev = revision(self.data)
        return flows

    def save(self, flows: list[Any], data: bytes | None = None) -> str:
        """Write ``flows`` atomically (``data``: their serialization, if already made)."""
        data = serialize_flows(flows) if data is None else data
        self.prepare(data).commit()
        return self.adopt(flows, data)

    def prepare(self, data: bytes) -> PendingWrite:
        """Phase one of a save: the new bytes are on disk (fsynced) beside the live file."""
        self.userdir.mkdir(parents=True, exist_ok=True)
        return PendingWrite(self.path, data)

    def adopt(self, flows: list[Any], data: bytes) -> str:
        """Record ``flows``/``data`` as the stored version (after a committed write)."""
        self.flows, self.data, self.rev = flows, data, revision(data)
        return self.rev

    def _keep_broken(self, raw: bytes) -> None:
        aside = self.path.with_name(f"{FLOWS_FILE}.broken-{int(time.time())}")
        try:
            atomic_write(aside, raw)
            log.error("kept the unusable flows file as %s", aside)
        except OSError as exc:
            log.error("could not keep a copy of the unusable flows file: %s", exc)

    def _remove_stale_temp_files(self) -> None:
        # A crash between write and rename leaves a temp file; it never holds the live flows.
        for stale in self.userdir.glob(f".{FLOWS_FILE}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
