"""Request guards that run before any view reads the body, and the security headers of every
response."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from apps.core.api import error_body
from apps.core.limits import RequestTooLarge

API_PREFIX = "/api/"
# Model uploads (apps.snapshots.artifacts) stream to disk: bounded by MAX_MODEL_BYTES instead.
_MODEL_UPLOAD = re.compile(r"^(?:/api/v1)?/teams/[^/]+/models/$")
_MULTIPART_OVERHEAD = 64 * 1024


def _refusal(request: HttpRequest) -> HttpResponseBase | None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if _MODEL_UPLOAD.match(request.path):
        limit = settings.MAX_MODEL_BYTES + _MULTIPART_OVERHEAD
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and (limit is None or int(declared) <= limit):
        return None
    message = str(RequestTooLarge().detail)
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body("request_too_large", message), status=413)
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


@sync_and_async_middleware
def request_size_limit_middleware(get_response: Callable[[HttpRequest], Any]) -> Any:
    """A declared body above ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is refused with 413 at once: the
    error body as JSON under ``/api/``, plain text elsewhere. (Left alone, Django refuses a form
    that size with an HTML 400, and DRF would read it whole.) Bodies sent without a length are
    bounded where they are read (``BoundedJSONParser``, Django's form parsing)."""
    if iscoroutinefunction(get_response):

        async def asynchronous(request: HttpRequest) -> HttpResponseBase:
            refused = _refusal(request)
            if refused is not None:
                return refused
            response: HttpResponseBase = await get_response(request)
            return response

        return asynchronous

    def synchronous(request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        refused = _refusal(request)
        return refused if refused is not None else get_response(request)

    return synchronous


def _with_policy(response: HttpResponseBase) -> HttpResponseBase:
    # A view may set a narrower policy of its own; never widen it.
    if "Content-Security-Policy" not in response:
        response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
    return response


@sync_and_async_middleware
def content_security_policy_middleware(get_response: Callable[[HttpRequest], Any]) -> Any:
    """``settings.CONTENT_SECURITY_POLICY`` on every response: scripts and styles from our own
    static files only, so an injected ``<script>`` or ``onclick`` never runs."""
    if iscoroutinefunction(get_response):

        async def asynchronous(request: HttpRequest) -> HttpResponseBase:
            return _with_policy(await get_response(request))

        return asynchronous

    def synchronous(request: HttpRequest) -> HttpResponseBase:
        return _with_policy(get_response(request))

    return synchronous
