"""The one pagination of every API list: ``?limit=`` (1 to 500, default 50) and ``?offset=``.

DRF's LimitOffsetPagination quietly falls back to the default on a malformed value and has no
upper bound, so ``?limit=99999999999999999999999`` reached the database and overflowed into a
500. Here a value that is not a whole number in range is a 400 naming the parameter.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.errors import ValidationError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Far beyond any list a person pages through, far below every database's integer limits.
MAX_OFFSET = 2**31 - 1


# For views that are not viewsets (drf-spectacular adds these to viewset lists by itself).
PAGE_PARAMETERS = [
    OpenApiParameter(
        "limit", int, description=f"Rows per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})."
    ),
    OpenApiParameter("offset", int, description="Rows to skip, from 0."),
]


def _bounded_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    message = f"{name} must be a whole number from {low} to {high}."
    # Digits only (no sign, no spaces) and a bounded length before int(): no huge parse.
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(high)):
        raise ValidationError(message, fields={name: message})
    value = int(raw)
    if not low <= value <= high:
        raise ValidationError(message, fields={name: message})
    return value


class ListPagination(LimitOffsetPagination):
    """Limit/offset pages with strict, bounded parameters (the project's default)."""

    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT

    def get_limit(self, request: Request) -> int:
        return _bounded_int(request, self.limit_query_param, DEFAULT_LIMIT, 1, MAX_LIMIT)

    def get_offset(self, request: Request) -> int:
        return _bounded_int(request, self.offset_query_param, 0, 0, MAX_OFFSET)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: (1, MAX_LIMIT, DEFAULT_LIMIT),
            self.offset_query_param: (0, MAX_OFFSET, 0),
        }
        for parameter in parameters:
            low, high, default = bounds[parameter["name"]]
            parameter["schema"] = {
                "type": "integer",
                "minimum": low,
                "maximum": high,
                "default": default,
            }
        return parameters


def paginated_response(
    request: Request,
    view: Any,
    queryset: QuerySet[Any],
    serializer_class: type[serializers.BaseSerializer[Any]],
) -> Response:
    """One page of ``queryset`` as ``{count, next, previous, results}``: every list uses this."""
    paginator = ListPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def page_serializer(
    item_serializer: type[serializers.BaseSerializer[Any]], name: str
) -> type[serializers.Serializer[dict[str, Any]]]:
    """The schema of one page of ``item_serializer`` rows, for views that are not viewsets."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "__doc__": f"One page of {item_serializer.__name__} rows.",
            "count": serializers.IntegerField(read_only=True),
            "next": serializers.URLField(allow_null=True, read_only=True),
            "previous": serializers.URLField(allow_null=True, read_only=True),
            "results": item_serializer(many=True, read_only=True),
        },
    )
