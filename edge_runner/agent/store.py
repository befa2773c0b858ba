"""Installed snapshots and the agent's state file, crash-safe (RELIABILITY.md families 15-17).

Layout (``RunnerPaths``)::

    snapshots/.incoming/<generation>/   parts being downloaded (resumable)
    snapshots/<generation>/             manifest.json + every part, all fsynced: complete
    agent.json                          active, last_good, handled, min_generation
    models/<sha256>.onnx                the engine's model store (``place_models``)

``install`` fsyncs every part, writes ``manifest.json`` (fsynced), fsyncs the directory, renames
``.incoming/<g>`` to ``<g>`` and fsyncs ``snapshots/``: a kill or power cut at any instant leaves
either no ``snapshots/<g>`` or a complete one. A directory is complete exactly when its
``manifest.json`` exists (it is written last, before the rename). ``agent.json`` is replaced
with ``lib.fsutil.atomic_write_bytes`` and only ever names complete snapshots.

A snapshot's models (parts ``models/<sha256>.onnx``) are installed with it, then hard-linked
(copied where links fail) into the engine's model store before the engine deploys the flows
that load them: temp name + fsync + rename, so the store holds whole, hash-checked files only.
After a successful apply, models no installed snapshot needs are removed (``prune``).

A full disk during ``install`` or ``record`` raises ``StoreError("disk_full")``: the incoming
directory is removed, ``agent.json`` and every installed snapshot are untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_runner.lib.fsutil import atomic_write_bytes, fsync_dir
from edge_runner.protocol.manifest import (
    FLOWS_PART,
    ManifestError,
    Part,
    canonical_json,
    model_hash,
)
from edge_runner.runtime.paths import RunnerPaths

log = logging.getLogger("edge_runner.agent.store")

MANIFEST_FILE = "manifest.json"
KEEP_INSTALLED = 3  # besides active and last_good
STATE_VERSION = 1


class StoreError(Exception):
    """An install or state write that did not happen; ``code`` names why (``disk_full``,
    ``incomplete``, ``part_size``, ``part_hash``, ``io_error``, ``corrupt_state``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Handled:
    """The last target the agent acted on and what came of it (``applying`` while under way)."""

    generation: int
    outcome: str
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"generation": self.generation, "outcome": self.outcome, "reason": self.reason}


@dataclass(frozen=True)
class AgentState:
    """``agent.json``: the generation the engine runs (``active``), the rollback point
    (``last_good``), the last handled target and the lowest generation still accepted."""

    active: int | None = None
    last_good: int | None = None
    handled: Handled | None = None
    min_generation: int = 0
    names: Mapping[int, str] = field(default_factory=dict)  # generation -> snapshot name

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "active": self.active,
            "last_good": self.last_good,
            "handled": self.handled.as_dict() if self.handled else None,
            "min_generation": self.min_generation,
            "names": {str(g): n for g, n in sorted(self.names.items())},
        }

    @classmethod
    def from_dict(cls, doc: Any) -> AgentState:
        if not isinstance(doc, dict):
            raise StoreError("corrupt_state", "agent.json must hold a JSON object")

        def generation(value: Any, what: str) -> int | None:
            if value is None:
                return None
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise StoreError("corrupt_state", f"agent.json: {what} must be a generation")
            return value

        handled = doc.get("handled")
        parsed_handled = None
        if isinstance(handled, dict):
            g = generation(handled.get("generation"), "handled.generation")
            if g is not None:
                parsed_handled = Handled(
                    g, str(handled.get("outcome", "")), str(handled.get("reason", ""))
                )
        names = doc.get("names")
        if not isinstance(names, dict):
            names = {}
        return cls(
            active=generation(doc.get("active"), "active"),
            last_good=generation(doc.get("last_good"), "last_good"),
            handled=parsed_handled,
            min_generation=generation(doc.get("min_generation"), "min_generation") or 0,
            names={int(g): str(n) for g, n in names.items() if str(g).isdigit()},
        )


class SnapshotStore:
    """The snapshots installed on this device and ``agent.json``; one per agent."""

    def __init__(self, paths: RunnerPaths) -> None:
        self.paths = paths
        self.state = self._load_state()

    # ------------------------------------------------------------------ state
    def _load_state(self) -> AgentState:
        try:
            raw = self.paths.agent_state.read_bytes()
        except FileNotFoundError:
            return AgentState()
        try:
            return AgentState.from_dict(json.loads(raw))
        except (ValueError, StoreError) as exc:
            # Only atomic replacements ever write it: this is outside damage, not a torn write.
            raise StoreError("corrupt_state", f"{self.paths.agent_state}: {exc}") from exc

    def record(self, **changes: Any) -> AgentState:
        """Replace fields of the state (``active``, ``last_good``, ``handled``,
        ``min_generation``, ``names``) and write ``agent.json`` atomically. Refuses to name a
        generation that is not installed completely; on a write error nothing changes."""
        new = replace(self.state, **changes)
        for g in (new.active, new.last_good):
            if g is not None and not self.is_installed(g):
                raise StoreError("incomplete", f"generation {g} is not installed completely")
        try:
            atomic_write_bytes(self.paths.agent_state, canonical_json(new.as_dict()) + b"\n")
        except OSError as exc:
            raise _os_error(exc, "agent.json could not be written") from exc
        self.state = new
        return new

    # ------------------------------------------------------------------ layout
    def snapshot_dir(self, generation: int) -> Path:
        return self.paths.snapshots / str(generation)

    def incoming(self, generation: int) -> Path:
        """The directory the parts of ``generation`` are downloaded into (created)."""
        path = self.paths.snapshots_incoming / str(generation)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def is_installed(self, generation: int) -> bool:
        return (self.snapshot_dir(generation) / MANIFEST_FILE).is_file()

    def installed(self) -> list[int]:
        """The completely installed generations, oldest first."""
        if not self.paths.snapshots.is_dir():
            return []
        found = []
        for entry in self.paths.snapshots.iterdir():
            if entry.name.isdigit() and (entry / MANIFEST_FILE).is_file():
                found.append(int(entry.name))
        return sorted(found)

    def manifest(self, generation: int) -> dict[str, Any]:
        """The signed manifest document stored with an installed generation."""
        doc = json.loads((self.snapshot_dir(generation) / MANIFEST_FILE).read_bytes())
        if not isinstance(doc, dict):
            raise StoreError("corrupt_snapshot", f"generation {generation}: manifest not an object")
        return doc

    def part(self, generation: int, name: str) -> bytes | None:
        """A part of an installed generation, ``None`` when the snapshot has no such part."""
        path = self.snapshot_dir(generation) / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------------ install
    async def install(self, generation: int, manifest_doc: Mapping[str, Any]) -> Path:
        """Move the complete download of ``generation`` into place (see the module doc).
        Every part is checked against the manifest first; a missing, short or altered part
        raises ``StoreError`` and keeps the download (it may resume); a full disk removes it."""
        return await asyncio.to_thread(self._install, generation, manifest_doc)

    def _install(self, generation: int, manifest_doc: Mapping[str, Any]) -> Path:
        target = self.snapshot_dir(generation)
        source = self.paths.snapshots_incoming / str(generation)
        if self.is_installed(generation):
            shutil.rmtree(source, ignore_errors=True)
            return target
        parts = _parts_of(manifest_doc)
        try:
            for part in parts:
                path = source / part.name
                try:
                    _check_file(part, path)
                except FileNotFoundError:
                    raise StoreError(
                        "incomplete", f"generation {generation}: part {part.name} is missing"
                    ) from None
                except ManifestError as exc:
                    if exc.code == "part_hash" or path.stat().st_size > part.size:
                        path.unlink()  # cannot be resumed: download it again
                    raise StoreError(exc.code, str(exc)) from None
                fsync_dir(path)  # opens read-only and fsyncs: the same for a file
            manifest_path = source / MANIFEST_FILE
            with open(manifest_path, "wb") as handle:
                handle.write(canonical_json(dict(manifest_doc)))
                handle.flush()
                os.fsync(handle.fileno())
            for directory in {source, *((source / p.name).parent for p in parts)}:
                fsync_dir(directory)
            if target.exists():  # a directory without manifest: an older interrupted attempt
                shutil.rmtree(target)
            os.rename(source, target)
            fsync_dir(self.paths.snapshots)
        except OSError as exc:
            error = _os_error(exc, f"generation {generation} could not be installed")
            if error.code == "disk_full":
                shutil.rmtree(source, ignore_errors=True)
                with contextlib.suppress(OSError):
                    fsync_dir(self.paths.snapshots_incoming)
            raise error from exc
        log.info("installed generation %s", generation)
        return target

    # ------------------------------------------------------------------ models
    def models_of(self, generation: int) -> list[Part]:
        """The model parts of an installed generation."""
        return [p for p in _parts_of(self.manifest(generation)) if model_hash(p.name)]

    def place_models(self, generation: int) -> list[str]:
        """Put every model of installed ``generation`` into the engine's model store as
        ``<sha256>.onnx`` (replacing whatever file had that name); returns the hashes.
        Raises ``StoreError`` when a model is missing or cannot be written."""
        placed = []
        try:
            for part in self.models_of(generation):
                sha256 = model_hash(part.name) or ""
                source = self.snapshot_dir(generation) / part.name
                target = self.paths.models / f"{sha256}.onnx"
                placed.append(sha256)
                if target.is_file() and os.path.samefile(source, target):
                    continue  # this very (verified) file is in place already
                self.paths.models.mkdir(parents=True, exist_ok=True)
                temp = self.paths.models / f".{sha256}.{os.getpid()}.tmp"
                temp.unlink(missing_ok=True)
                try:
                    os.link(source, temp)
                except OSError:
                    shutil.copyfile(source, temp)
                    fsync_dir(temp)  # opens read-only and fsyncs: the same for a file
                os.replace(temp, target)
                fsync_dir(self.paths.models)
        except FileNotFoundError as exc:
            raise StoreError(
                "incomplete", f"generation {generation}: model {exc.filename} is missing"
            ) from None
        except OSError as exc:
            raise _os_error(
                exc, f"the models of generation {generation} could not be placed"
            ) from exc
        return placed

    def prune_models(self) -> list[str]:
        """Remove models of the model store that no installed generation ships (models the
        engine's flows could still roll back to stay); returns the removed hashes."""
        needed: set[str] = set()
        for g in self.installed():
            needed.update(model_hash(p.name) or "" for p in self.models_of(g))
        removed = []
        if self.paths.models.is_dir():
            for entry in self.paths.models.iterdir():
                stem = entry.name.removesuffix(".onnx")
                if entry.name.endswith(".onnx") and stem not in needed and entry.is_file():
                    entry.unlink()
                    removed.append(stem)
                elif entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    entry.unlink()
        if removed:
            fsync_dir(self.paths.models)
        return removed

    # ------------------------------------------------------------------ housekeeping
    def prune(self) -> list[int]:
        """Remove installed generations beyond the newest ``KEEP_INSTALLED``, never the active
        or last good one; returns what was removed."""
        keep = set(self.installed()[-KEEP_INSTALLED:])
        keep.update(g for g in (self.state.active, self.state.last_good) if g is not None)
        removed = []
        for g in self.installed():
            if g not in keep:
                shutil.rmtree(self.snapshot_dir(g), ignore_errors=True)
                removed.append(g)
        if removed:
            fsync_dir(self.paths.snapshots)
        return removed

    def clean(
        self, resume: int | None = None, sizes: Mapping[str, int] | None = None
    ) -> list[Path]:
        """At agent start: remove leftover temp files of ``agent.json``, half-installed
        directories (no manifest) and every download except the one of generation ``resume``,
        of which only part files named in ``sizes`` and not longer than their size are kept
        (a download resumes from them). Returns what was removed."""
        removed: list[Path] = []
        root = self.paths.root
        if root.is_dir():
            for entry in root.iterdir():
                if entry.name.startswith(f".{self.paths.agent_state.name}.") and entry.is_file():
                    entry.unlink()
                    removed.append(entry)
        snapshots = self.paths.snapshots
        if snapshots.is_dir():
            for entry in snapshots.iterdir():
                if entry.name == self.paths.snapshots_incoming.name:
                    continue
                if not (entry.name.isdigit() and (entry / MANIFEST_FILE).is_file()):
                    _remove(entry)
                    removed.append(entry)
        incoming = self.paths.snapshots_incoming
        if incoming.is_dir():
            for entry in incoming.iterdir():
                if resume is not None and entry.name == str(resume) and entry.is_dir():
                    removed.extend(_keep_resumable(entry, sizes or {}))
                else:
                    _remove(entry)
                    removed.append(entry)
        return removed


def _parts_of(manifest_doc: Mapping[str, Any]) -> list[Part]:
    body = manifest_doc.get("manifest")
    table = body.get("parts") if isinstance(body, Mapping) else None
    if not isinstance(table, Mapping) or FLOWS_PART not in table:
        raise StoreError("malformed", "the manifest has no parts table with flows.json")
    parts = []
    for name, info in sorted(table.items()):
        if not isinstance(info, Mapping) or ".." in str(name).split("/"):
            raise StoreError("malformed", f"invalid part {name!r}")
        parts.append(Part(str(name), str(info.get("sha256")), int(info.get("size", -1))))
    return parts


def _check_file(part: Part, path: Path) -> None:
    """``manifest.check_part`` for a file, read in chunks (models can be large)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    if size != part.size:
        raise ManifestError(
            "part_size", f"part {part.name}: {size} bytes, the manifest says {part.size}"
        )
    if digest.hexdigest() != part.sha256:
        raise ManifestError("part_hash", f"part {part.name}: SHA-256 does not match the manifest")


def _keep_resumable(directory: Path, sizes: Mapping[str, int]) -> list[Path]:
    removed = []
    for path in sorted(directory.rglob("*"), reverse=True):
        name = path.relative_to(directory).as_posix()
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
            continue
        expected = sizes.get(name)
        if expected is None or path.stat().st_size > expected:
            path.unlink()
            removed.append(path)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _os_error(exc: OSError, what: str) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError("disk_full", f"{what}: no space left on the device")
    return StoreError("io_error", f"{what}: {exc.strerror or exc}")
