"""``watch``: a message for every change to the files or directories watched (inotify through
``watchfiles``), with Node-RED's fields and ``update`` / ``remove`` events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, ClassVar, cast

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, register

# node-watch (Node-RED's watcher) reports one event per path changed in a 200 ms window: here
# changes are reported once 200 ms pass without another (at the latest every second).
STEP_MS = 200
DEBOUNCE_MS = 1000
STOP_TIMEOUT = 5.0

# watchfiles logs every batch at INFO; the messages are the report, the runner's log is not
logging.getLogger("watchfiles.main").setLevel(logging.WARNING)


class Config(NodeConfig):
    files: str = ""
    recursive: bool | str = ""


SPEC = NodeSpec(
    type="watch",
    version=1,
    category=Category.STORAGE,
    inputs=0,
    outputs=1,
    label="watch",
    color="BurlyWood",
    icon="watch.svg",
    help="""Watches directories or files for changes.

### Outputs
- **payload** *string*: the full path of the file that changed.
- **topic** *string*: what is watched (a list in JSON when several are).
- **file** *string*: the file name only.
- **filename** *string*: the full path again.
- **event** *string*: `update` (created or changed) or `remove`.
- **type** *string*: `file`, `directory`, `socket`, `fifo`, `blockdevice`,
  `characterdevice`, `n/a`, or `none` when it is gone.
- **size** *number*: the size of a file, in bytes.

### Details
*Files* is a comma-separated list of files and directories. A directory reports changes to
the entries in it, and with *recursive* to everything below it. A file is watched through its
directory, so it is still watched after an editor saved it by renaming a new file over it, or
after it was deleted and created again. A burst of changes is reported once per path, 200 ms
after the last one (Node-RED's watcher groups them by 200 ms too). Relative paths are taken
from the runner's data directory; a path that does not exist is reported as an error and not
watched.
""",
)


_KINDS = (
    (stat.S_ISREG, "file"),
    (stat.S_ISBLK, "blockdevice"),
    (stat.S_ISCHR, "characterdevice"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISDIR, "directory"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "n/a")


@register
class WatchNode(Node):
    """Watch files and directories; one message per change."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        config = cast(Config, config)
        self.files = [part.strip() for part in config.files.split(",")]
        self.topic = (
            self.files[0]
            if len(self.files) == 1
            else json.dumps(self.files, separators=(",", ":"), ensure_ascii=False)
        )
        self.recursive = bool(config.recursive)
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        targets = self._targets()
        if targets is not None:
            self.task = asyncio.get_running_loop().create_task(self._watch(*targets))

    def _targets(self) -> tuple[set[str], set[str]] | None:
        """The directories and the files to watch (``None``: nothing exists)."""
        directories: set[str] = set()
        files: set[str] = set()
        for name in self.files:
            if not name:
                continue
            path = Path(name).expanduser()
            if not path.is_absolute():
                path = self.rt.data_dir / path
            if path.is_dir():
                directories.add(str(path))
            elif path.exists():
                files.add(str(path))
            else:
                self.error(f"{name} does not exist.", {"payload": ""})
        if not any(self.files):
            # the editor's default: deployed as Node-RED deploys it, watching nothing
            self.error("no file or directory to watch", {"payload": ""})
        return (directories, files) if directories or files else None

    async def _watch(self, directories: set[str], files: set[str]) -> None:
        from watchfiles import awatch  # a Rust extension: loaded by flows that watch only

        # A file is watched through its directory, as node-watch does: a watch on the file
        # itself would be lost when an editor saves by renaming a new file over it.
        roots = directories | {os.path.dirname(f) for f in files}

        def wanted(_change: object, path: str) -> bool:
            if path in files:
                return True
            if self.recursive:
                return any(path.startswith(d + os.sep) for d in directories)
            return os.path.dirname(path) in directories

        try:
            async for changes in awatch(
                *roots,
                watch_filter=wanted,
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=self.stop_event,
                recursive=self.recursive,
            ):
                for changed in sorted({path for _, path in changes}):
                    self._report(changed)
        except Exception as exc:  # the watcher failed (watch limit, permissions)
            if not self.stop_event.is_set():
                self.error(f"{type(exc).__name__}: {exc}", {"payload": ""})

    def _report(self, path: str) -> None:
        # as node-watch: what exists after the burst of changes was updated, the rest removed
        try:
            info: os.stat_result | None = os.stat(path)
        except OSError:
            info = None
        msg: Msg = {
            "payload": path,
            "topic": self.topic,
            "file": os.path.basename(path),
            "filename": path,
            "event": "update" if info is not None else "remove",
        }
        kind = "none"
        if info is not None:
            kind = _kind(info.st_mode)
            if kind == "file":
                msg["size"] = info.st_size
        msg["type"] = kind
        self.send(msg)

    async def stop(self) -> None:
        self.stop_event.set()
        task, self.task = self.task, None
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
            task.cancel()
