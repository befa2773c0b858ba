"""Fetching a target's parts: resumable, bounded, checked against the signed manifest.

Each part goes to ``snapshots/.incoming/<generation>/<part>`` (``SnapshotStore.incoming``). A
partial file left by a cut connection or a killed agent is resumed with ``Range: bytes=N-``
(RELIABILITY.md family 16: re-downloaded bytes stay a small fraction of the part). A part is
never read past the size its manifest names, and a complete part whose size or SHA-256 differs
is deleted and refused (``part_size`` / ``part_hash``, as ``manifest.check_part``): a truncated
or tampered bundle never reaches the installer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from edge_runner.lib.fsutil import fsync_dir
from edge_runner.protocol import link
from edge_runner.protocol.manifest import Manifest, ManifestError, Part

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
PART_TIMEOUT_SECONDS = 300.0
# How often one part is resumed after a cut connection before the target is given up on.
MAX_RESUMES = 5


class DownloadError(Exception):
    """A part could not be fetched (network, timeout, HTTP error); ``code`` names why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class DownloadStats:
    """What fetching one bundle cost: bytes received over the wire versus bytes needed."""

    needed: int = 0
    received: int = 0
    resumed: int = 0

    @property
    def overhead(self) -> float:
        """Bytes received beyond the bundle's size, as a fraction of it."""
        return (self.received - self.needed) / self.needed if self.needed else 0.0


def part_url(base_url: str, generation: int, part: str) -> str:
    return f"{base_url}{link.BUNDLE_PATH}{generation}/{part}"


def _hash_prefix(path: Path) -> tuple[hashlib._Hash, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest, size


def _resume_point(target: Path, part: Part) -> tuple[hashlib._Hash, int]:
    """The hash and size of what ``target`` already holds of ``part`` (a complete part that
    does not match, or more bytes than the part has, start over)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        digest, have = _hash_prefix(target)
        if have < part.size or (have == part.size and digest.hexdigest() == part.sha256):
            return digest, have
        target.unlink()
    return hashlib.sha256(), 0


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _refuse(path: Path, code: str, message: str) -> ManifestError:
    _discard(path)
    return ManifestError(code, message)


async def fetch_part(
    session: aiohttp.ClientSession,
    url: str,
    part: Part,
    target: Path,
    *,
    headers: dict[str, str],
    ssl_context: ssl.SSLContext | None = None,
    stats: DownloadStats | None = None,
    time_limit: float = PART_TIMEOUT_SECONDS,
) -> None:
    """Make ``target`` hold exactly ``part`` (resuming what is there), or raise
    ``ManifestError`` (refused: wrong size or hash) or ``DownloadError`` (try again later)."""
    stats = stats if stats is not None else DownloadStats()
    stats.needed += part.size
    digest, have = _resume_point(target, part)
    if have == part.size:
        return
    request_headers = dict(headers)
    if have:
        request_headers["Range"] = f"bytes={have}-"
        stats.resumed += 1
    try:
        async with session.get(
            url,
            headers=request_headers,
            ssl=ssl_context if ssl_context is not None else True,
            timeout=aiohttp.ClientTimeout(total=time_limit, sock_read=min(time_limit, 60.0)),
        ) as answer:
            if answer.status == 416 and have:
                # the server holds fewer bytes than we have: start this part over
                _discard(target)
                raise DownloadError("range", f"part {part.name}: resume refused (416)")
            if answer.status == 200 and have:
                digest, have = hashlib.sha256(), 0  # no range support: the whole part again
            elif answer.status not in (200, 206):
                code = "not_found" if answer.status == 404 else f"http_{answer.status}"
                raise DownloadError(code, f"part {part.name}: HTTP {answer.status}")
            mode = "ab" if have else "wb"
            with target.open(mode) as handle:
                async for chunk in answer.content.iter_chunked(CHUNK_BYTES):
                    stats.received += len(chunk)
                    if have + len(chunk) > part.size:
                        handle.close()
                        raise _refuse(
                            target,
                            "part_size",
                            f"part {part.name}: more than the {part.size} bytes the manifest says",
                        )
                    handle.write(chunk)
                    digest.update(chunk)
                    have += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
    except (aiohttp.ClientError, TimeoutError) as exc:
        # what arrived stays on disk: the next attempt resumes from there
        raise DownloadError("network", f"part {part.name}: {exc or type(exc).__name__}") from None
    if have != part.size:
        raise _refuse(
            target, "part_size", f"part {part.name}: {have} bytes, the manifest says {part.size}"
        )
    if digest.hexdigest() != part.sha256:
        raise _refuse(target, "part_hash", f"part {part.name}: SHA-256 does not match the manifest")


async def fetch_bundle(
    session: aiohttp.ClientSession,
    base_url: str,
    manifest: Manifest,
    directory: Path,
    *,
    headers: dict[str, str],
    ssl_context: ssl.SSLContext | None = None,
    time_limit: float = PART_TIMEOUT_SECONDS,
    max_resumes: int = MAX_RESUMES,
) -> DownloadStats:
    """Fetch every part of ``manifest`` into ``directory``; a cut connection is resumed up to
    ``max_resumes`` times per part. Raises ``ManifestError`` (refused) or ``DownloadError``."""
    stats = DownloadStats()
    for part in manifest.parts:
        target = directory / part.name
        attempt = 0
        while True:
            try:
                await fetch_part(
                    session,
                    part_url(base_url, manifest.generation, part.name),
                    part,
                    target,
                    headers=headers,
                    ssl_context=ssl_context,
                    stats=stats,
                    time_limit=time_limit,
                )
                break
            except DownloadError as exc:
                attempt += 1
                stats.needed -= part.size  # counted again by the next attempt
                if exc.code not in ("network", "range") or attempt > max_resumes:
                    raise
                log.info("download of %s cut (%s), resuming", part.name, exc)
    for parent in {(directory / p.name).parent for p in manifest.parts}:
        fsync_dir(parent)
    return stats
