"""The ``file in`` node (read file): a whole file, or one message per line or chunk."""

from __future__ import annotations

import asyncio
import codecs
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

from pydantic import field_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    clone_msg,
    new_msgid,
    register,
)
from edge_runner.nodes.file_out import (
    codec_name,
    confine,
    data_dir,
    decode_bytes,
    default_filename_type,
    filename_of,
    known_encoding,
)

CHUNK = 64 * 1024  # Node-RED's stream chunk size
# A whole file becomes one message only up to this size; larger files are read by line or
# chunk so a device never holds them in memory at once.
MAX_WHOLE_FILE = 64 * 1024 * 1024


class Config(NodeConfig):
    filename: str = ""
    filenameType: str = "str"  # noqa: N815  # Node-RED's field name
    format: Literal["utf8", "lines", "stream", ""] = "utf8"
    chunk: bool = False
    sendError: bool = False  # noqa: N815
    encoding: str = "none"
    allProps: bool = False  # noqa: N815

    _default_type = field_validator("filenameType", mode="before")(default_filename_type)
    _known_encoding = field_validator("encoding")(known_encoding)


SPEC = NodeSpec(
    type="file in",
    version=1,
    category=Category.STORAGE,
    inputs=1,
    outputs=1,
    label="read file",
    color="BurlyWood",
    icon="file-in.svg",
    help="""Reads a file from the runner's data directory.

### Inputs
- **filename** *string*: the file name when *Filename* is taken from the message (or when
  *Filename* is empty).

### Outputs
- **payload** *string | bytes*: the file content (`utf8`: text; `""`: bytes), or one line
  (`lines`) or one 64 KiB chunk of bytes (`stream`) per message.
- **parts** *object*: for lines and chunks: `id`, `index`, `ch`, `type`; the last message
  also carries `count`, so a *join* node (or the *csv* node) can tell when the file ends.
- **filename** *string*: the file read.

### Details
*Filename* is a typed value resolved relative to the data directory; paths leaving it
(`..`, absolute paths elsewhere, symlinks) are refused. *encoding* decodes text
(`none` = UTF-8). With *allProps* every line/chunk message is a copy of the input message,
otherwise it carries only `topic` and `filename`. A missing or unreadable file raises a
catchable error; with *sendError* the message is also sent on with `msg.error` set.
""",
)


@register
class FileInNode(Node):
    """Read a file as text, bytes, lines or chunks."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)
        self.root: Path | None = None
        self.format = self.cfg.format
        if self.format == "utf8" and self.cfg.chunk:
            self.format = "lines"  # pre-1.0 flows: "chunk" meant one message per line

    async def start(self) -> None:
        self.root = data_dir(self.rt)

    def _filename(self, msg: Msg) -> Any:
        return filename_of(self, self.cfg.filename, self.cfg.filenameType, msg)

    async def on_message(self, msg: Msg) -> None:
        name = self._filename(msg)
        try:
            path = confine(self.root or data_dir(self.rt), name)
            if path.is_dir():
                raise NodeFailed(f"{name!r} is a directory, not a file")
            if self.format in ("utf8", ""):
                await self._whole(msg, path, name)
            else:
                await self._pieces(msg, path, name)
        except (NodeFailed, OSError) as exc:
            text = (
                str(exc)
                if isinstance(exc, NodeFailed)
                else f"failed to read {name!r}: {exc.strerror or exc}"
            )
            if self.cfg.sendError:
                out = clone_msg(msg)
                out.pop("payload", None)
                out["error"] = {"message": text, "source": {"id": self.id, "type": "file in"}}
                self.send(out)
            raise NodeFailed(text) from exc

    async def _whole(self, msg: Msg, path: Path, name: str) -> None:
        size = await asyncio.to_thread(os.path.getsize, path)
        if size > MAX_WHOLE_FILE:
            raise NodeFailed(
                f"{name!r} is {size} bytes; files over {MAX_WHOLE_FILE} bytes "
                "must be read as lines or a stream"
            )
        data = await asyncio.to_thread(path.read_bytes)
        msg["filename"] = name
        msg["payload"] = decode_bytes(data, self.cfg.encoding) if self.format == "utf8" else data
        self.send(msg)

    def _piece(self, msg: Msg, name: str) -> Msg:
        if self.cfg.allProps:
            out = clone_msg(msg)
            out["_msgid"] = new_msgid()
            return out
        out = {"filename": name}
        if "topic" in msg:
            out["topic"] = msg["topic"]
        return out

    async def _pieces(self, msg: Msg, path: Path, name: str) -> None:
        lines = self.format == "lines"
        parts_id = msg.get("_msgid") or new_msgid()
        ch, kind = ("\n", "string") if lines else ("", "buffer")
        index = 0
        handle = await asyncio.to_thread(path.open, "rb")
        decoder = codecs.getincrementaldecoder(
            "utf-8"
            if codec_name(self.cfg.encoding) in ("base64", "hex")
            else codec_name(self.cfg.encoding)
        )(errors="replace")
        spare = ""
        pending: Msg | None = None  # held back so the last one can carry parts.count
        try:
            while True:
                chunk = await asyncio.to_thread(handle.read, CHUNK)
                if lines:
                    spare += decoder.decode(chunk, final=not chunk)
                    *complete, spare = spare.split("\n")
                    payloads: list[Any] = complete
                else:
                    payloads = [chunk] if chunk else []
                for payload in payloads:
                    if pending is not None:
                        self.send(pending)
                    pending = self._piece(msg, name)
                    pending["payload"] = payload
                    pending["parts"] = {"index": index, "ch": ch, "type": kind, "id": parts_id}
                    index += 1
                if not chunk:
                    break
        finally:
            await asyncio.to_thread(handle.close)
        if lines:
            # Like Node-RED, what follows the last newline is the last line (maybe empty).
            if pending is not None:
                self.send(pending)
            pending = self._piece(msg, name)
            pending["payload"] = spare
            pending["parts"] = {"index": index, "ch": ch, "type": kind, "id": parts_id}
            index += 1
        if pending is None:
            pending = self._piece(msg, name)
            pending["payload"] = b""
            pending["parts"] = {"index": 0, "ch": ch, "type": kind, "id": parts_id}
            index = 1
        pending["parts"]["count"] = index
        self.send(pending)
