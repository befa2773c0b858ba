"""The userdir's flows and credentials: ``flows.json`` + ``flows_cred.json`` (Node-RED's layout,
so a Node-RED userdir is read as it is), committed together as one unit.

A commit writes and fsyncs each new file beside the live one (``.<name>.<pid>.<n>.tmp``), then
writes the journal ``.deploy.json`` naming those temp files, atomically: that write is the
commit point. Then each temp file is renamed over its target and the journal removed. (A deploy
that leaves the credentials as they are renames ``flows.json`` alone: atomic by itself.) At load,
a journal left by a crash is rolled forward (its temp files renamed in place) before anything
reads the files, and every other temp file is removed: after a kill or a power cut at any
instant the userdir holds the old flows with the old credentials or the new flows with the new
credentials, never a mix (RELIABILITY.md families 15 and 34).

``.starting`` marks that flows are being started (written durably before the first node starts,
removed once every node started). Found at load, it means the last start killed the runner
(``os._exit`` in node code, a crash in a native library, the OOM killer): the deployer then
loads the flows without starting them (safe mode).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from edge_runner.lib.fsutil import atomic_write_bytes, fsync_dir
from edge_runner.runtime.paths import CREDENTIALS_FILE, FLOWS_FILE, JOURNAL_FILE, STARTING_FILE

# One-step replacement; kept under this name for the modules that import it from here.
atomic_write = atomic_write_bytes

log = logging.getLogger("edge_runner.storage")

_COMMITTED = (FLOWS_FILE, CREDENTIALS_FILE)
_counter = itertools.count()


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


def _write_temp(directory: Path, name: str, data: bytes) -> Path:
    """``data`` written and fsynced to a new temp file for ``directory/name``."""
    tmp = directory / f".{name}.{os.getpid()}.{next(_counter)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def _is_temp_for(name: str, target: str) -> bool:
    return name.startswith(f".{target}.") and name.endswith(".tmp") and "/" not in name


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
        self.recover()
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

    def save(self, flows: list[Any], credentials: bytes | None = None) -> str:
        """Commit ``flows`` (and, when given, the credential file's new bytes) as one unit;
        returns the new revision."""
        data = serialize_flows(flows)
        return self.commit(self.stage(data), flows, data, credentials)

    def stage(self, data: bytes) -> Path:
        """Phase one, which may overlap validation: the new flows bytes written and fsynced to
        a temp file beside ``flows.json``. Pass it to ``commit`` (or ``discard`` it)."""
        self.userdir.mkdir(parents=True, exist_ok=True)
        return _write_temp(self.userdir, FLOWS_FILE, data)

    @staticmethod
    def discard(staged: Path) -> None:
        staged.unlink(missing_ok=True)

    def commit(
        self, staged: Path, flows: list[Any], data: bytes, credentials: bytes | None = None
    ) -> str:
        """Make the staged flows (``data``, the serialization of ``flows``) and ``credentials``
        the stored version, atomically together (see the module docstring). Without new
        credentials one rename is atomic already: no journal."""
        files = {FLOWS_FILE: staged.name}
        try:
            if credentials is not None:
                files[CREDENTIALS_FILE] = _write_temp(
                    self.userdir, CREDENTIALS_FILE, credentials
                ).name
                atomic_write(self.journal, json.dumps(files).encode())
        except BaseException:
            for name in files.values():
                (self.userdir / name).unlink(missing_ok=True)
            raise
        # Committed: from here on a crash is rolled forward at the next load.
        self._roll_forward(files)
        self.flows, self.data, self.rev = flows, data, revision(data)
        return self.rev

    @property
    def journal(self) -> Path:
        return self.userdir / JOURNAL_FILE

    def recover(self) -> None:
        """Finish a commit a crash interrupted, then remove stray temp files."""
        self.userdir.mkdir(parents=True, exist_ok=True)
        try:
            raw = self.journal.read_bytes()
        except FileNotFoundError:
            raw = None
        if raw is not None:
            try:
                journal = json.loads(raw)
                if not isinstance(journal, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                # atomic_write never leaves a torn journal; this one was written by hand.
                log.error("ignoring unusable %s: %s", self.journal, exc)
                journal = {}
            log.warning("completing a deploy interrupted after its commit point")
            self._roll_forward(journal)
        self._remove_stale_temp_files()

    def _roll_forward(self, journal: dict[str, Any]) -> None:
        for target in _COMMITTED:
            name = journal.get(target)
            if not isinstance(name, str) or not _is_temp_for(name, target):
                continue
            # Missing: renamed already (temp files are only removed after this step).
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.userdir / name, self.userdir / target)
        fsync_dir(self.userdir)
        # Not fsynced: a journal that outlives a power cut names temp files that are gone
        # (renamed), and rolling it forward again does nothing.
        self.journal.unlink(missing_ok=True)

    # ------------------------------------------------------------------ start marker
    def starting_marker(self) -> dict[str, Any] | None:
        """The ``.starting`` marker's content, if a start did not complete."""
        try:
            raw = (self.userdir / STARTING_FILE).read_bytes()
        except FileNotFoundError:
            return None
        try:
            found = json.loads(raw)
        except ValueError:
            found = None
        return found if isinstance(found, dict) else {}

    def mark_starting(self, rev: str) -> None:
        # Its existence is what counts (made durable by the directory fsync); content a power
        # cut tore only loses the revision shown in the safe-mode reason.
        doc = {"rev": rev, "since": time.time(), "pid": os.getpid()}
        fd = os.open(self.userdir / STARTING_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(doc).encode())
        finally:
            os.close(fd)
        fsync_dir(self.userdir)

    def clear_starting(self) -> None:
        path = self.userdir / STARTING_FILE
        if path.exists():
            path.unlink(missing_ok=True)
            fsync_dir(self.userdir)

    def _keep_broken(self, raw: bytes) -> None:
        aside = self.path.with_name(f"{FLOWS_FILE}.broken-{int(time.time())}")
        try:
            atomic_write(aside, raw)
            log.error("kept the unusable flows file as %s", aside)
        except OSError as exc:
            log.error("could not keep a copy of the unusable flows file: %s", exc)

    def _remove_stale_temp_files(self) -> None:
        # A crash before the commit point leaves temp files; they never hold the live version.
        for target in (*_COMMITTED, JOURNAL_FILE, STARTING_FILE):
            for stale in self.userdir.glob(f".{target}.*.tmp"):
                with contextlib.suppress(OSError):
                    stale.unlink()
