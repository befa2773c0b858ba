"""``GET /api/v1/devices/bundles/<generation>/<part>``: a part of one of the device's targets.

Authenticated with the device credential; a device reads only its own targets (another
device's generation answers the same 404 as a missing one). The answer carries the part's
SHA-256 as ETag and honours ``Range: bytes=N-`` (206) so an interrupted download resumes where
it stopped (family 16). The bytes are checked against the signed manifest before they leave.
"""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from apps.core.api import error_body
from apps.devices.auth import device_for_credential
from apps.devices.services.targets import device_bundle_part
from edge_runner.protocol import manifest

_RANGE = re.compile(r"^bytes=(\d+)-$")


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


@require_safe
def bundle_part(request: HttpRequest, generation: int, part: str) -> HttpResponse:
    scheme, _, raw = str(request.headers.get("Authorization", "")).partition(" ")
    device = device_for_credential(raw.strip()) if scheme.lower() == "bearer" else None
    if device is None:
        refusal = _error(401, "invalid_credential", "A valid device credential is required.")
        refusal["WWW-Authenticate"] = "Bearer"
        return refusal
    if not manifest.PART_NAME.match(part):
        return _error(404, "not_found", "No such part.")
    body = device_bundle_part(device, generation, part)
    if body is None:
        return _error(404, "not_found", "No such part.")
    digest = manifest.sha256_hex(body)
    start = 0
    requested = str(request.headers.get("Range", ""))
    if requested:
        match = _RANGE.match(requested.strip())
        if match is None or int(match[1]) > len(body) or (body and int(match[1]) == len(body)):
            refusal = _error(
                416, "range_not_satisfiable", f"Only 'bytes=N-' with N < {len(body)} is served."
            )
            refusal["Content-Range"] = f"bytes */{len(body)}"
            return refusal
        start = int(match[1])
    response = HttpResponse(
        body[start:] if request.method == "GET" else b"",
        status=206 if requested else 200,
        content_type="application/octet-stream",
    )
    response["Content-Length"] = str(len(body) - start)
    response["ETag"] = f'"{digest}"'
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-store"
    if requested:
        response["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
    return response
