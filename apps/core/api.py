"""API plumbing shared by every app: one error body shape for every failure.

Every error leaves the API as ``{"error": {"code": "...", "message": "...", "fields": {...}}}``.
Set ``REST_FRAMEWORK["EXCEPTION_HANDLER"] = "apps.core.api.exception_handler"``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.errors import ManifoldError, ValidationError
from apps.core.limits import RequestTooLarge


def _flatten(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [message for value in detail.values() for message in _flatten(value)]
    if isinstance(detail, list):
        return [message for item in detail for message in _flatten(item)]
    return [str(detail)]


def _field_errors(detail: Any) -> dict[str, list[str]]:
    if not isinstance(detail, dict):
        return {}
    return {str(name): _flatten(value) for name, value in detail.items()}


def error_body(
    code: str, message: str, fields: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """The one error body shape."""
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map domain errors and DRF/Django errors to the one error body shape."""
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    if isinstance(exc, ManifoldError):
        fields = exc.fields if isinstance(exc, ValidationError) else {}
        refusal = Response(error_body(exc.code, exc.message, fields), status=exc.status_code)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            refusal["Retry-After"] = str(retry_after)
        return refusal
    if isinstance(exc, DjangoValidationError):
        fields = {k: [str(m) for m in v] for k, v in getattr(exc, "message_dict", {}).items()}
        message = "; ".join(exc.messages) or "Invalid input."
        return Response(error_body("invalid", message, fields), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, drf_exceptions.APIException):
        return response
    if isinstance(exc, drf_exceptions.ValidationError):
        fields = _field_errors(exc.detail)
        non_field = fields.pop("non_field_errors", [])
        messages = non_field or [f"{name}: {'; '.join(errs)}" for name, errs in fields.items()]
        if not isinstance(exc.detail, dict):
            messages = _flatten(exc.detail)
        response.data = error_body("invalid", " ".join(messages) or "Invalid input.", fields)
        return response
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else "error"
    response.data = error_body(code, " ".join(_flatten(exc.detail)))
    return response


def validated(serializer_class: type[Any], data: Any) -> dict[str, Any]:
    """Validate a request body with a shape-only serializer; errors become the 400 body."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def http_request(request: Request) -> HttpRequest:
    """The Django request under DRF's, for the audit trail's IP and user agent."""
    return request._request
