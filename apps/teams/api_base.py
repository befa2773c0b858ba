"""The team-scoped API bases every team resource builds on (STYLE rule 3).

``TeamScopedViewSet`` for resources, ``TeamScopedAPIView`` for endpoints that are not one
(exports, settings): the one tenancy base, in two shapes that share their checks.

Subclasses say *what* (``scoped_queryset``, ``access_object``, ``permissions``); the base decides
*whose*: it resolves the team from the URL slug through ``team_access`` (404 for missing, foreign
or outside the token's scope), checks the action's permission key, and filters every queryset by
team. Overriding ``get_queryset``/``get_object`` is refused at class creation; the only way around
the team filter is a method named ``dangerously_get_queryset``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.accounts.principal import Principal, principal_from_request
from apps.core.errors import NotFound
from apps.rbac.permissions import PERMISSIONS, permission_spec
from apps.teams.access import TeamAccess, team_access
from apps.teams.models import Application, Team

_SEALED = ("get_queryset", "get_object", "initial")
# The path parameter of every team-scoped endpoint, for the OpenAPI schema.
TEAM_SLUG = OpenApiParameter("team_slug", OpenApiTypes.STR, OpenApiParameter.PATH)
_STANDARD_ACTIONS = ("list", "create", "retrieve", "update", "partial_update", "destroy")


def _require_keys(cls: type[_TeamScoped], handlers: list[str]) -> None:
    """Every handler (action or HTTP method) names a known key, checked at class creation."""
    for handler in handlers:
        key = cls.permissions.get(handler)
        if key is None:
            raise TypeError(f"{cls.__name__}.{handler} names no permission key")
        if key not in PERMISSIONS:
            raise TypeError(f"{cls.__name__}.{handler} names unknown permission {key!r}")


class _TeamScoped:
    """What both bases give their subclasses: the principal, the team and its access."""

    permissions: ClassVar[dict[str, str]] = {}
    team_url_kwarg: ClassVar[str] = "team_slug"
    # DRF's Request at runtime; typed loosely because Django's View declares an HttpRequest.
    request: Any
    team_access: TeamAccess

    @property
    def principal(self) -> Principal:
        return principal_from_request(self.request)

    @property
    def team(self) -> Team:
        return self.team_access.team


class TeamScopedViewSet(_TeamScoped, viewsets.GenericViewSet):  # type: ignore[type-arg]  # DRF generics are not generic at runtime
    """Base of every API viewset under ``teams/<team_slug>/``.

    ``permissions`` maps each action (``list``, ``create``, custom ``@action`` names…) to the key
    it needs; an action without a key fails at class creation.
    """

    # Path from the model to its team, used to filter every queryset.
    team_field: ClassVar[str] = "team"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for hook in _SEALED:
            if hook in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {hook}(): team scoping lives in TeamScopedViewSet. "
                    "Implement scoped_queryset()/access_object(), or dangerously_get_queryset()."
                )
        actions = [name for name in _STANDARD_ACTIONS if callable(getattr(cls, name, None))]
        actions += [name for name, value in vars(cls).items() if hasattr(value, "mapping")]
        _require_keys(cls, actions)

    # --- the sealed part -------------------------------------------------------------------

    @property
    def required_permission(self) -> str:
        if self.action in (None, "metadata"):
            # OPTIONS describes the endpoint; seeing the team is enough for that.
            return "team:read"
        return self.permissions[str(self.action)]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.team_access = team_access(self.principal, str(kwargs.get(self.team_url_kwarg, "")))
        permission = self.required_permission
        # Application-scoped keys on one object are decided in get_object(), where the
        # application (and any override of it) is known.
        if not (permission_spec(permission).application_scoped and self._is_detail()):
            self.team_access.require(permission)

    def _is_detail(self) -> bool:
        return (self.lookup_url_kwarg or self.lookup_field) in self.kwargs

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):
            return self.scoped_queryset().none()
        dangerous = getattr(self, "dangerously_get_queryset", None)
        if callable(dangerous):
            result: QuerySet[Any] = dangerous()
            return result
        return self.scoped_queryset().filter(**{self.team_field: self.team})

    def get_object(self) -> Any:
        value = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        permission = self.required_permission
        obj = self.access_object(value, permission)
        if self.team_id_of(obj) != self.team.pk:
            raise NotFound()
        application = self.application_of(obj)
        if application is not None:
            self.team_access.require(permission, application)
        elif permission_spec(permission).application_scoped:
            self.team_access.require(permission)
        return obj

    # --- what subclasses provide -----------------------------------------------------------

    def scoped_queryset(self) -> QuerySet[Any]:
        """The unfiltered queryset of this resource; the base adds the team filter."""
        raise NotImplementedError

    def access_object(self, lookup: str, permission: str) -> Model:
        """Turn the URL id into an object of ``self.team`` through an ``access_*`` function."""
        raise NotImplementedError

    def team_id_of(self, obj: Any) -> int | None:
        """The team an object belongs to: a last check that access_object stayed in the team."""
        if isinstance(obj, Team):
            return obj.pk
        team_id: int | None = getattr(obj, "team_id", None)
        return team_id

    def application_of(self, obj: Any) -> Application | None:
        """The application an object lives in, so its overrides apply."""
        if isinstance(obj, Application):
            return obj
        application = getattr(obj, "application", None)
        return application if isinstance(application, Application) else None


class TeamScopedAPIView(_TeamScoped, APIView):
    """Base of every non-viewset API endpoint under ``teams/<team_slug>/``.

    ``permissions`` maps each HTTP method it handles (lower case) to the key it needs; a handler
    without a key fails at class creation. The team is resolved and the key checked before the
    handler runs; handlers read ``self.team_access`` / ``self.team``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "initial" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides initial(): team scoping lives in TeamScopedAPIView."
            )
        handlers = [
            method
            for method in cls.http_method_names
            if method not in ("options", "head") and callable(getattr(cls, method, None))
        ]
        _require_keys(cls, handlers)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.team_access = team_access(self.principal, str(kwargs.get(self.team_url_kwarg, "")))
        method = str(request.method).lower()
        method = "get" if method == "head" else method
        # OPTIONS describes the endpoint; seeing the team is enough for that.
        self.team_access.require("team:read" if method == "options" else self.permissions[method])
