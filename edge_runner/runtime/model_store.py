"""The runner's model store: ONNX models kept by content hash in ``<data dir>/models/``.

A model is referenced from a flow by the SHA-256 of its bytes, never by a file name, so a flow
always runs the exact model it was published with (the platform ships models with snapshots;
standalone the user adds them with the helper below). Files are ``<sha256>.onnx``, written with
temp file + fsync + rename + fsync(dir), and every load re-checks the hash: a truncated or
tampered file is refused rather than run.

Command line (standalone)::

    python -m edge_runner.runtime.model_store add MODEL.onnx --data-dir DIR   # prints the hash
    python -m edge_runner.runtime.model_store list --data-dir DIR

Where the store lives: ``RunnerPaths.models`` of the engine (``--userdir`` is the same option
under Node-RED's name, as for ``python -m edge_runner serve``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_runner.lib.fsutil import atomic_write_bytes
from edge_runner.runtime.paths import DEFAULT_ROOT, RunnerPaths

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi

SUFFIX = ".onnx"
# ONNX protobufs are limited to 2 GiB; larger files are not models we can load.
MAX_MODEL_BYTES = 2 * 1024**3
_HASH = re.compile(r"^[0-9a-f]{64}$")


class ModelStoreError(Exception):
    """A model reference or file that cannot be used (bad hash, missing, corrupted)."""


def normalise_hash(reference: str) -> str:
    """Accept ``<hex>`` or ``sha256:<hex>`` in any case; raise ModelStoreError otherwise."""
    if not isinstance(reference, str):
        raise ModelStoreError(f"model reference must be a string, got {type(reference).__name__}")
    text = reference.strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    if not _HASH.match(text):
        raise ModelStoreError(
            f"model reference {reference!r} is not a SHA-256 hash (64 hex digits)"
        )
    return text


@dataclass(frozen=True)
class StoredModel:
    sha256: str
    path: Path
    size: int


class ModelStore:
    """Content-addressed ONNX files under one directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path_for(self, reference: str) -> Path:
        return self.root / f"{normalise_hash(reference)}{SUFFIX}"

    def add_bytes(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its SHA-256."""
        if not data:
            raise ModelStoreError("model file is empty")
        if len(data) > MAX_MODEL_BYTES:
            raise ModelStoreError(f"model is {len(data)} bytes; the limit is {MAX_MODEL_BYTES}")
        digest = hashlib.sha256(data).hexdigest()
        target = self.root / f"{digest}{SUFFIX}"
        if target.exists() and self._hash_file(target) == digest:
            return digest
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
        return digest

    def add_file(self, path: str | os.PathLike[str]) -> str:
        source = Path(path)
        if not source.is_file():
            raise ModelStoreError(f"no such model file: {source}")
        return self.add_bytes(source.read_bytes())

    def load(self, reference: str) -> bytes:
        """The model's bytes, after checking they still hash to ``reference``."""
        digest = normalise_hash(reference)
        path = self.root / f"{digest}{SUFFIX}"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelStoreError(
                f"model {digest[:12]}… is not in the model store ({self.root})"
            ) from None
        except OSError as exc:
            raise ModelStoreError(f"model {digest[:12]}… cannot be read: {exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ModelStoreError(
                f"corrupted model file {digest[:12]}… (its content hashes to {actual[:12]}…)"
            )
        return data

    def list(self) -> list[StoredModel]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob(f"*{SUFFIX}")):
            stem = path.name[: -len(SUFFIX)]
            if _HASH.match(stem):
                found.append(StoredModel(stem, path, path.stat().st_size))
        return found

    @staticmethod
    def _hash_file(path: Path) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()


# ------------------------------------------------------------------------- model metadata

# onnxruntime's type strings -> numpy dtype names
ORT_TO_NUMPY = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type: str  # onnxruntime's spelling, e.g. "tensor(float)"
    shape: tuple[int | str | None, ...]

    @property
    def numpy_dtype(self) -> str:
        return ORT_TO_NUMPY.get(self.type, "float32")

    def shape_text(self) -> str:
        dims = ["?" if d is None or isinstance(d, str) else str(d) for d in self.shape]
        return "[" + ",".join(dims) + "]"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "shape": [d if isinstance(d, int) else None for d in self.shape],
        }


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model declares: shown in the node status and put on ``msg.model``."""

    sha256: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    opset: dict[str, int]
    ir_version: int
    producer: str

    def summary(self) -> str:
        ins = " ".join(f"{t.name}{t.shape_text()}" for t in self.inputs)
        outs = " ".join(t.name for t in self.outputs)
        opset = self.opset.get("", self.opset.get("ai.onnx", 0))
        return f"{ins} → {outs} · opset {opset}"[:80]

    def as_dict(self) -> dict[str, Any]:
        cached: dict[str, Any] | None = self.__dict__.get("_dict")
        if cached is None:
            cached = {
                "sha256": self.sha256,
                "inputs": [t.as_dict() for t in self.inputs],
                "outputs": [t.as_dict() for t in self.outputs],
                "opset": dict(self.opset),
                "irVersion": self.ir_version,
                "producer": self.producer,
            }
            object.__setattr__(self, "_dict", cached)
        return cached


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ModelStoreError("model file is not a valid ONNX protobuf")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Any:
    """Top-level (field number, wire type, value) of a protobuf message; length-delimited
    values are returned as bytes slices, the rest as ints. Enough to read ModelProto's header
    without the ``onnx`` package (a dev-only dependency)."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ModelStoreError("model file is truncated")
            yield number, wire, data[pos : pos + size]
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ModelStoreError("model file is not a valid ONNX protobuf")


def read_header(data: bytes) -> tuple[int, dict[str, int], str]:
    """(ir_version, {opset domain: version}, producer) from ModelProto fields 1, 8 and 2."""
    ir_version, opsets, producer = 0, {}, ""
    for number, wire, value in _fields(data):
        if number == 1 and wire == 0:
            ir_version = value
        elif number == 2 and wire == 2:
            producer = bytes(value).decode("utf-8", "replace")
        elif number == 8 and wire == 2:
            domain, version = "", 0
            for inner, inner_wire, inner_value in _fields(bytes(value)):
                if inner == 1 and inner_wire == 2:
                    domain = bytes(inner_value).decode("utf-8", "replace")
                elif inner == 2 and inner_wire == 0:
                    version = inner_value
            opsets[domain] = version
    return ir_version, opsets, producer


def describe_session(session: Any, data: bytes, sha256: str) -> ModelInfo:
    """ModelInfo from an onnxruntime InferenceSession and the model's bytes."""

    def tensors(items: Any) -> tuple[TensorInfo, ...]:
        return tuple(TensorInfo(t.name, str(t.type), tuple(t.shape or ())) for t in items)

    ir_version, opsets, producer = read_header(data)
    return ModelInfo(
        sha256,
        tensors(session.get_inputs()),
        tensors(session.get_outputs()),
        opsets,
        ir_version,
        producer,
    )


def store_for(rt: NodeApi) -> ModelStore:
    """The model store of the data directory of the runner running ``rt``."""
    return ModelStore(rt.paths.models)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge_runner.runtime.model_store",
        description="Manage the runner's content-hash model store.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="copy an ONNX file into the store and print its hash")
    add.add_argument("file")
    listing = sub.add_parser("list", help="list stored models")
    for command in (add, listing):
        command.add_argument("--data-dir", "--userdir", dest="data_dir", default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    store = ModelStore(RunnerPaths.at(args.data_dir).models)
    try:
        if args.command == "add":
            sys.stdout.write(store.add_file(args.file) + "\n")
        else:
            for model in store.list():
                sys.stdout.write(f"{model.sha256}  {model.size}\n")
    except ModelStoreError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
