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

from pydantic import field_validator

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, register

# node-watch (Node-RED's watcher) waits 200 ms and reports one event per path changed in it
DEBOUNCE_MS = 200
STEP_MS = 50
STOP_TIMEOUT = 5.0

# watchfiles logs every batch at INFO; the messages are the report, the runner's log is not
logging.getLogger("watchfiles.main").setLevel(logging.WARNING)


class Config(NodeConfig):
    files: str = ""
    recursive: bool | str = ""

    @field_validator("files")
    @classmethod
    def _some_file(cls, value: str) -> str:
        if not any(part.strip() for part in value.split(",")):
            raise ValueError("name at least one file or directory to watch")
        return value


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
the entries in it, and with *recursive* to everything below it. Changes within 200 ms are
reported once per path (as the watcher of Node-RED does). Relative paths are taken from the
runner's data directory; a path that does not exist is reported as an error and not watched.
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
        paths = self._existing_paths()
        if paths:
            self.task = asyncio.get_running_loop().create_task(self._watch(paths))

    def _existing_paths(self) -> list[Path]:
        paths: list[Path] = []
        for name in self.files:
            path = Path(name).expanduser()
            if not path.is_absolute():
                path = self.rt.data_dir / path
            if path.exists():
                paths.append(path)
            else:
                self.error(f"{name} does not exist.", {"payload": ""})
        return paths

    async def _watch(self, paths: list[Path]) -> None:
        from watchfiles import awatch  # a Rust extension: loaded by flows that watch only

        try:
            async for changes in awatch(
                *paths,
                watch_filter=None,
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
