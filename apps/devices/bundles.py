"""``GET /api/v1/devices/bundles/<generation>/<part>``: a part of one of the device's targets.

Authenticated with the device credential; a device reads only its own targets (another
device's generation answers the same 404 as a missing one). The answer carries the part's
SHA-256 as ETag and honours ``Range: bytes=N-`` (206) so an interrupted download resumes where
it stopped (family 16). The bytes are checked against the signed manifest before they leave.

Model parts (``models/<sha256>.onnx``, up to ``MAX_MODEL_BYTES``) are streamed from the
artifact store in chunks, never read whole; their size is checked here, their hash by the device.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterator
from typing import IO

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_safe

from apps.core.api import error_body
from apps.devices.auth import device_for_credential
from apps.devices.services.targets import device_bundle_model, device_bundle_part
from edge_runner.protocol import manifest

_RANGE = re.compile(r"^bytes=(\d+)-$")
CHUNK_BYTES = 256 * 1024


class FileStreamResponse(StreamingHttpResponse):
    """An open file from ``start`` to its end, in chunks: read in the worker thread under
    WSGI, in a thread per chunk under ASGI (Django would otherwise collect a synchronous
    iterator into one list before sending it)."""

    def __init__(self, handle: IO[bytes], start: int, **kwargs: object) -> None:
        self._handle = handle
        handle.seek(start)
        super().__init__(self._chunks(), **kwargs)

    def close(self) -> None:
        self._handle.close()
        super().close()

    def _chunks(self) -> Iterator[bytes]:
        while chunk := self._handle.read(CHUNK_BYTES):
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await asyncio.to_thread(self._handle.read, CHUNK_BYTES):
            yield chunk


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


@require_safe
def bundle_part(request: HttpRequest, generation: int, part: str) -> HttpResponseBase:
    scheme, _, raw = str(request.headers.get("Authorization", "")).partition(" ")
    device = device_for_credential(raw.strip()) if scheme.lower() == "bearer" else None
    if device is None:
        refusal = _error(401, "invalid_credential", "A valid device credential is required.")
        refusal["WWW-Authenticate"] = "Bearer"
        return refusal
    if not manifest.PART_NAME.match(part):
        return _error(404, "not_found", "No such part.")
    if manifest.model_hash(part) is not None:
        return _model_part(request, device_bundle_model(device, generation, part), part)
    body = device_bundle_part(device, generation, part)
    if body is None:
        return _error(404, "not_found", "No such part.")
    start = _range_start(request, len(body))
    if isinstance(start, HttpResponse):
        return start
    response = HttpResponse(
        body[start:] if request.method == "GET" else b"",
        status=206 if request.headers.get("Range") else 200,
        content_type="application/octet-stream",
    )
    return _headers(request, response, start, len(body), manifest.sha256_hex(body))


def _model_part(request: HttpRequest, handle: IO[bytes] | None, part: str) -> HttpResponseBase:
    if handle is None:
        return _error(404, "not_found", "No such part.")
    size = os.fstat(handle.fileno()).st_size
    start = _range_start(request, size)
    response: HttpResponseBase
    if isinstance(start, HttpResponse) or request.method != "GET":
        handle.close()
        if isinstance(start, HttpResponse):
            return start
        response = HttpResponse(
            b"",
            status=206 if request.headers.get("Range") else 200,
            content_type="application/octet-stream",
        )
    else:
        response = FileStreamResponse(
            handle,
            start,
            status=206 if request.headers.get("Range") else 200,
            content_type="application/octet-stream",
        )
    return _headers(request, response, start, size, manifest.model_hash(part) or "")


def _range_start(request: HttpRequest, size: int) -> int | HttpResponse:
    """Where the answer starts (``Range: bytes=N-``), or the 416 refusal."""
    requested = str(request.headers.get("Range", ""))
    if not requested:
        return 0
    match = _RANGE.match(requested.strip())
    if match is None or int(match[1]) > size or (size and int(match[1]) == size):
        refusal = _error(
            416, "range_not_satisfiable", f"Only 'bytes=N-' with N < {size} is served."
        )
        refusal["Content-Range"] = f"bytes */{size}"
        return refusal
    return int(match[1])


def _headers(
    request: HttpRequest, response: HttpResponseBase, start: int, size: int, digest: str
) -> HttpResponseBase:
    response["Content-Length"] = str(size - start)
    response["ETag"] = f'"{digest}"'
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-store"
    if request.headers.get("Range"):
        response["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
    return response
