"""The safe base class cannot be bypassed; errors have one body shape; the schema is valid."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import QuerySet
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework import exceptions
from rest_framework.decorators import action

from apps.core.api import exception_handler
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from apps.rbac.permissions import PERMISSIONS, PLATFORM_PERMISSIONS
from apps.teams.api_base import TeamScopedViewSet
from apps.teams.models import Application


@pytest.mark.parametrize("hook", ["get_queryset", "get_object", "initial"])
def test_overriding_a_sealed_hook_fails_at_class_creation(hook: str) -> None:
    with pytest.raises(TypeError, match=hook):
        type("Leaky", (TeamScopedViewSet,), {hook: lambda self: None})


def test_every_action_must_name_a_known_permission() -> None:
    with pytest.raises(TypeError, match="names no permission"):

        class NoKey(TeamScopedViewSet):
            def list(self, request: Any) -> None: ...

    with pytest.raises(TypeError, match="unknown permission"):

        class BadKey(TeamScopedViewSet):
            permissions = {"list": "flow:destroy"}

            def list(self, request: Any) -> None: ...

    with pytest.raises(TypeError, match="names no permission"):

        class NoKeyAction(TeamScopedViewSet):
            permissions = {}

            @action(detail=False)  # type: ignore[type-var]  # a bare stand-in action
            def extra(self, request: Any) -> None: ...


def test_the_escape_hatch_is_explicitly_dangerous() -> None:
    class Explicit(TeamScopedViewSet):
        permissions = {"list": "application:read"}

        def list(self, request: Any) -> None: ...

        def dangerously_get_queryset(self) -> QuerySet[Application]:
            return Application.objects.all()

    assert "dangerously_get_queryset" in vars(Explicit)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ValidationError("Bad.", fields={"name": "Too long."}), 400, "invalid"),
        (PermissionDenied("No."), 403, "permission_denied"),
        (NotFound(), 404, "not_found"),
        (Conflict("Clash.", code="last_owner"), 409, "last_owner"),
        (exceptions.NotAuthenticated(), 401, "not_authenticated"),
        (exceptions.ValidationError({"email": ["Enter a valid email address."]}), 400, "invalid"),
    ],
)
def test_error_bodies_have_one_shape(error: Exception, status: int, code: str) -> None:
    response = exception_handler(error, {})
    assert response is not None
    assert response.status_code == status
    body = response.data["error"]
    assert set(body) == {"code", "message", "fields"}
    assert body["code"] == code
    assert body["message"]


def test_validation_fields_are_lists() -> None:
    response = exception_handler(ValidationError("Bad.", fields={"name": "Too long."}), {})
    assert response is not None
    assert response.data["error"]["fields"] == {"name": ["Too long."]}


def _api_views() -> list[Any]:
    found: list[Any] = []

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif (prefix + str(pattern.pattern)).startswith("api/v1/"):
                found.append((prefix + str(pattern.pattern), pattern.callback))

    walk(get_resolver().url_patterns, "")
    return found


def test_every_domain_api_view_names_known_permission_keys() -> None:
    own = ("apps.accounts", "apps.teams", "apps.rbac")
    checked = 0
    for route, callback in _api_views():
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if view is None or not view.__module__.startswith(own):
            continue
        keys = list(getattr(view, "permissions", {}).values())
        single = getattr(view, "permission", None)
        keys += [single] if single else []
        assert keys, f"{route} names no permission"
        assert set(keys) <= set(PERMISSIONS) | set(PLATFORM_PERMISSIONS), route
        checked += 1
    assert checked >= 15


def test_openapi_schema_is_valid(db: Any) -> None:
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    # drf-spectacular is untyped here.
    schema = SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-untyped-call]  # drf-spectacular is untyped
    validate_schema(schema)  # type: ignore[no-untyped-call]  # drf-spectacular is untyped
    paths = schema["paths"]
    for path in [
        "/api/v1/me/",
        "/api/v1/tokens/",
        "/api/v1/teams/",
        "/api/v1/teams/{team_slug}/",
        "/api/v1/teams/{team_slug}/members/{membership_id}/",
        "/api/v1/teams/{team_slug}/custom-roles/",
        "/api/v1/invitations/{token}/accept/",
    ]:
        assert path in paths, path
    assert "personalAccessToken" in schema["components"]["securitySchemes"]


def test_openapi_schema_generates_without_warnings(db: Any, tmp_path: Any) -> None:
    """``manage.py spectacular --validate --fail-on-warn``: no guessed serializer, no collision."""
    from django.core.management import call_command

    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert "teams_audit_events_export_csv" in text
    assert "teams_audit_events_list" in text
