"""The ``file`` node (write file): append, overwrite (atomically) or delete a file.

Every path is confined to the runner's node data directory (``<data dir>/data``, see
``runtime/paths.py``). Paths that leave it, through ``..``, an absolute path or a symlink, are
refused.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

from pydantic import field_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeApi,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    register,
)
from edge_runner.lib.fsutil import atomic_write_bytes

# iconv-lite names Node-RED offers, mapped to Python codecs where the spelling differs.
_ENCODING_ALIASES = {
    "none": "utf-8",
    "utf8": "utf-8",
    "ucs2": "utf-16-le",
    "utf16le": "utf-16-le",
    "utf-16le": "utf-16-le",
    "utf16be": "utf-16-be",
    "utf-16be": "utf-16-be",
    "binary": "latin-1",
    "win1252": "cp1252",
    "windows1252": "cp1252",
    "ascii": "ascii",
    "latin1": "latin-1",
    "iso88591": "latin-1",
}


def codec_name(encoding: str) -> str:
    """The Python codec for a Node-RED (iconv-lite) encoding name; ValueError if unknown."""
    key = (encoding or "none").strip().lower()
    if key in ("base64", "hex"):
        return key
    name = _ENCODING_ALIASES.get(key, key)
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None


def encode_text(text: str, encoding: str) -> bytes:
    codec = codec_name(encoding)
    if codec == "base64":
        import base64

        return base64.b64decode(text)
    if codec == "hex":
        return bytes.fromhex(text)
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        raise NodeFailed(f"text cannot be encoded as {encoding}: {exc}") from exc


def decode_bytes(data: bytes, encoding: str) -> str:
    codec = codec_name(encoding)
    if codec == "base64":
        import base64

        return base64.b64encode(data).decode("ascii")
    if codec == "hex":
        return data.hex()
    return data.decode(codec, errors="replace")


def default_filename_type(cls: Any, value: Any) -> Any:
    """Config validator (``mode="before"``) of ``filenameType``: blank means ``str``."""
    return value or "str"


def known_encoding(cls: Any, value: str) -> str:
    """Config validator of ``encoding``: a name :func:`codec_name` knows; blank is ``none``."""
    codec_name(value)
    return value or "none"


def filename_of(node: Node, filename: str, filename_type: str, msg: Msg) -> Any:
    """The file name a file node uses for ``msg``: its typed *Filename*, evaluated."""
    if not filename and filename_type == "str":
        return msg.get("filename")  # legacy: an empty filename means msg.filename
    return node.rt.evaluate(filename, filename_type, msg)


def data_dir(rt: NodeApi) -> Path:
    """The directory file nodes may use (created on first use)."""
    return rt.data_dir.resolve()


def confine(root: Path, filename: Any) -> Path:
    """Resolve ``filename`` (relative to ``root``, or absolute inside it) following symlinks;
    NodeFailed when the result is not inside ``root``."""
    if not isinstance(filename, str) or not filename.strip():
        raise NodeFailed("No filename specified")
    if "\x00" in filename:
        raise NodeFailed("Invalid filename: contains a NUL character")
    candidate = Path(filename)
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = Path(os.path.realpath(candidate))
    if resolved != root and root not in resolved.parents:
        raise NodeFailed(f"Path {filename!r} is outside the data directory")
    return resolved


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` so that a crash leaves the old or the new content, never a mix; the
    file keeps its permission bits (a new one gets 0644, as Node-RED's would)."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    atomic_write_bytes(path, data, mode)


def append(path: Path, data: bytes) -> None:
    # O_NOFOLLOW: a symlink swapped in after the path check must not redirect the write.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class Config(NodeConfig):
    filename: str = ""
    filenameType: str = "str"  # noqa: N815  # Node-RED's field name
    appendNewline: bool = True  # noqa: N815
    createDir: bool = False  # noqa: N815
    overwriteFile: Literal["true", "false", "delete"] = "false"  # noqa: N815
    encoding: str = "none"

    @field_validator("overwriteFile", mode="before")
    @classmethod
    def _bool_as_text(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        return value

    _default_type = field_validator("filenameType", mode="before")(default_filename_type)
    _known_encoding = field_validator("encoding")(known_encoding)


SPEC = NodeSpec(
    type="file",
    version=1,
    category=Category.STORAGE,
    inputs=1,
    outputs=1,
    label="write file",
    color="BurlyWood",
    icon="file-out.svg",
    help="""Writes `msg.payload` to a file in the runner's data directory: appends, overwrites
or deletes it.

### Inputs
- **payload** *string | bytes | object*: what to write; objects are written as JSON.
- **filename** *string*: the file name when *Filename* is taken from the message (or when
  *Filename* is empty).

### Outputs
- the input message, once the file has been written (or deleted).

### Details
*Filename* is a typed value (`str`, `msg`, `env`, `flow`, `global`, `jsonata`) resolved
relative to the data directory; absolute paths are accepted only inside it, and paths that
leave it (`..`, symlinks) are refused. *overwriteFile* is `false` (append), `true`
(overwrite: written to a temporary file, synced and renamed over the old one, so a power cut
leaves the old or the new content) or `delete`. *appendNewline* adds `\\n` after text
payloads; *createDir* creates missing parent directories; *encoding* (`none` = UTF-8,
`latin1`, `utf16le`, `win1252`, `base64`, `hex`, ...) applies to text payloads. A write that
fails raises a catchable error and turns the status red until a write succeeds.
""",
)


def payload_bytes(payload: Any, newline: bool, encoding: str) -> bytes:
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        text = payload
    elif isinstance(payload, bool):
        text = "true" if payload else "false"
    elif isinstance(payload, (dict, list)):
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    elif payload is None:
        text = "null"
    else:
        text = str(payload)
    if newline:
        text += os.linesep
    return encode_text(text, encoding)


@register
class FileOutNode(Node):
    """Write, append to or delete a file inside the runner's data directory."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)
        self.root: Path | None = None
        self.failing = False

    async def start(self) -> None:
        self.root = data_dir(self.rt)

    def _filename(self, msg: Msg) -> Any:
        return filename_of(self, self.cfg.filename, self.cfg.filenameType, msg)

    async def on_message(self, msg: Msg) -> None:
        cfg = self.cfg
        root = self.root or data_dir(self.rt)
        name = self._filename(msg)
        try:
            path = confine(root, name)
            if path == root:
                raise NodeFailed(f"{name!r} is the data directory, not a file")
            if cfg.overwriteFile == "delete":
                await asyncio.to_thread(self._delete, path)
            else:
                if "payload" not in msg:
                    return
                data = payload_bytes(
                    msg["payload"],
                    cfg.appendNewline and not isinstance(msg["payload"], (bytes, bytearray)),
                    cfg.encoding,
                )
                await asyncio.to_thread(self._write, path, data)
        except NodeFailed as exc:
            self._failed(str(exc))
            raise
        except OSError as exc:
            text = (
                f"failed to {'delete' if cfg.overwriteFile == 'delete' else 'write'} "
                f"{name!r}: {exc.strerror or exc}"
            )
            self._failed(text)
            raise NodeFailed(text) from exc
        if self.failing:
            self.failing = False
            self.status()
        self.send(msg)

    def _failed(self, text: str) -> None:
        self.failing = True
        self.status("red", "ring", text[:60])

    def _delete(self, path: Path) -> None:
        if path.is_dir():
            raise NodeFailed(f"{path.name!r} is a directory, not a file")
        path.unlink(missing_ok=True)

    def _write(self, path: Path, data: bytes) -> None:
        if self.cfg.createDir:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.parent.is_dir():
            raise NodeFailed(
                f"directory {path.parent.name!r} does not exist "
                "(enable 'create directory if it doesn't exist')"
            )
        if path.is_dir():
            raise NodeFailed(f"{path.name!r} is a directory, not a file")
        if self.cfg.overwriteFile == "true":
            atomic_write(path, data)
        else:
            append(path, data)
