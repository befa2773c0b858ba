"""Model artifacts: ONNX files a team uploads and snapshots ship to devices by content hash.

The bytes live once per hash under ``settings.ARTIFACT_DIR`` (``<sha256[:2]>/<sha256>.onnx``),
whoever uploaded them; a ``ModelArtifact`` row per (team, hash) is what makes them a team's:
every read goes through the team's rows, so a team never reaches another team's model even
when both uploaded the same bytes. An upload streams to a temp file (hashed and size-checked
on the way, never held in memory), is checked to be an ONNX ModelProto, then fsynced and
renamed into place; the same bytes again only answer the existing row.

The platform does not depend on the ``onnx`` package (a dev-only dependency), so the check is
structural: the file must parse as a protobuf message to its last byte with ModelProto's
``ir_version`` (field 1) and ``graph`` (field 7). onnxruntime on the device loads it for real.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from apps.accounts.principal import Principal
from apps.audit.services import audit_record
from apps.core.errors import Conflict, ValidationError
from apps.snapshots.models import ModelArtifact
from apps.teams.models import Team

CONTENT_TYPE = "application/onnx"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK_BYTES = 1024 * 1024


class NotOnnx(ValueError):  # noqa: N818  # a refusal reason, not a crash
    """The file is not an ONNX ModelProto."""


# ---------------------------------------------------------------------- files
def artifact_path(sha256: str) -> Path:
    """Where the bytes of ``sha256`` live (whether or not they are there)."""
    if not _SHA256.match(sha256):
        raise ValueError(f"not a SHA-256: {sha256!r}")
    return Path(settings.ARTIFACT_DIR) / sha256[:2] / f"{sha256}.onnx"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _varint(handle: IO[bytes]) -> int | None:
    """A protobuf varint from ``handle``; None at a clean end of file."""
    result = shift = 0
    while True:
        byte = handle.read(1)
        if not byte:
            if shift == 0:
                return None
            raise NotOnnx("the file ends inside a protobuf field")
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise NotOnnx("the file is not a protobuf message")


def check_onnx(path: Path) -> None:
    """Walk the top-level fields of ``path`` (skipping their bodies): it must be a whole
    protobuf message carrying ModelProto's ``ir_version`` and ``graph``."""
    size = path.stat().st_size
    seen: set[int] = set()
    with path.open("rb") as handle:
        while True:
            key = _varint(handle)
            if key is None:
                break
            number, wire = key >> 3, key & 7
            if number == 0:
                raise NotOnnx("the file is not a protobuf message")
            if wire == 0:
                if _varint(handle) is None:
                    raise NotOnnx("the file ends inside a protobuf field")
            elif wire == 2:
                length = _varint(handle)
                if length is None or handle.tell() + length > size:
                    raise NotOnnx("the file is truncated")
                handle.seek(length, os.SEEK_CUR)
            elif wire in (1, 5):
                step = 8 if wire == 1 else 4
                if handle.tell() + step > size:
                    raise NotOnnx("the file is truncated")
                handle.seek(step, os.SEEK_CUR)
            else:
                raise NotOnnx("the file is not a protobuf message")
            if (number, wire) in ((1, 0), (7, 2)):
                seen.add(number)
    if seen != {1, 7}:
        raise NotOnnx("the file has no ONNX model header (ir_version and graph)")


def _receive(chunks: Iterable[bytes], limit: int) -> tuple[Path, str, int]:
    """Write ``chunks`` to a temp file beside the store; (temp path, sha256, size)."""
    root = Path(settings.ARTIFACT_DIR)
    incoming = root / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=incoming, suffix=".part")
    temp = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise ValidationError(
                        f"The model is larger than the limit of {limit} bytes.",
                        fields={"file": f"At most {limit} bytes."},
                        code="too_large",
                    )
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if size == 0:
            raise ValidationError(
                "The model file is empty.", fields={"file": "The file is empty."}, code="empty"
            )
        check_onnx(temp)
    except NotOnnx as exc:
        temp.unlink(missing_ok=True)
        raise ValidationError(
            f"This is not an ONNX model: {exc}.",
            fields={"file": f"Not an ONNX model: {exc}."},
            code="not_onnx",
        ) from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp, digest.hexdigest(), size


def _place(temp: Path, sha256: str) -> None:
    """Move ``temp`` to the hash's place (or drop it when the bytes are there already)."""
    target = artifact_path(sha256)
    if target.is_file() and target.stat().st_size == temp.stat().st_size:
        temp.unlink(missing_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp, target)
    _fsync_dir(target.parent)


def _remove_unreferenced(sha256: str) -> None:
    if not ModelArtifact.objects.filter(sha256=sha256).exists():
        artifact_path(sha256).unlink(missing_ok=True)


# ---------------------------------------------------------------------- services
def model_summary(artifact: ModelArtifact) -> dict[str, Any]:
    return {
        "id": artifact.pk,
        "name": artifact.name,
        "sha256": artifact.sha256,
        "size": artifact.size,
    }


def model_upload(
    *, principal: Principal, team: Team, name: str, chunks: Iterable[bytes]
) -> tuple[ModelArtifact, bool]:
    """Store an uploaded ONNX model for ``team`` (``team.model.uploaded``); (row, created).
    The same bytes again answer the team's existing row (created False, nothing audited)."""
    principal.require_writable("upload models")
    clean_name = (name if isinstance(name, str) else "").strip()
    if not 0 < len(clean_name) <= 200:
        raise ValidationError(
            "The name must be 1 to 200 characters.",
            fields={"name": "The name must be 1 to 200 characters."},
        )
    temp, sha256, size = _receive(chunks, settings.MAX_MODEL_BYTES)
    try:
        existing = ModelArtifact.objects.filter(team=team, sha256=sha256).first()
        if existing is not None:
            _place(temp, sha256)  # heals a file lost under the row
            return existing, False
        user = principal.user
        try:
            with transaction.atomic():
                artifact = ModelArtifact.objects.create(
                    team=team,
                    name=clean_name,
                    sha256=sha256,
                    size=size,
                    content_type=CONTENT_TYPE,
                    created_by=user if user is not None and user.is_authenticated else None,
                )
                audit_record(
                    event="team.model.uploaded",
                    principal=principal,
                    team=team,
                    target=artifact,
                    after=model_summary(artifact),
                )
        except IntegrityError:  # the same bytes uploaded at the same time
            _place(temp, sha256)
            return ModelArtifact.objects.get(team=team, sha256=sha256), False
        _place(temp, sha256)
        return artifact, True
    finally:
        temp.unlink(missing_ok=True)


def model_delete(*, principal: Principal, artifact: ModelArtifact) -> None:
    """Delete a model no snapshot references (409 otherwise); its bytes go when no team
    holds them any more (``team.model.deleted``)."""
    principal.require_writable("delete models")
    in_use = Conflict(
        "Snapshots use this model; delete those snapshots before the model.",
        code="model_in_use",
    )
    with transaction.atomic():
        if artifact.snapshot_links.exists():
            raise in_use
        audit_record(
            event="team.model.deleted",
            principal=principal,
            team=artifact.team,
            target=artifact,
            before=model_summary(artifact),
        )
        sha256 = artifact.sha256
        try:
            with transaction.atomic():
                artifact.delete()
        except ProtectedError:
            raise in_use from None
        transaction.on_commit(lambda: _remove_unreferenced(sha256))


# ---------------------------------------------------------------------- reads
def open_verified(artifact: ModelArtifact) -> IO[bytes] | None:
    """The artifact's file opened for reading, when it still has the recorded size (a full hash
    check of a large file on every request is left to the device, which checks every part)."""
    path = artifact_path(artifact.sha256)
    with contextlib.suppress(OSError):
        handle = path.open("rb")
        if os.fstat(handle.fileno()).st_size == artifact.size:
            return handle
        handle.close()
    return None
