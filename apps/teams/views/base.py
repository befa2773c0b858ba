"""The one way a team page reaches its team: ``team_page(permission)``.

Every page names the permission key it needs. The decorator resolves the URL's team slug through
``team_access`` (404 alike for missing and foreign teams), checks the key (a 403 page naming the
permission), and hands the view a ``TeamAccess``. Domain errors a view lets escape become the
same 404/403 pages, so no view needs to translate them by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, ParamSpec

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.principal import principal_from_request
from apps.core.errors import NotFound, PermissionDenied
from apps.rbac.permissions import PERMISSIONS, permission_spec
from apps.teams.access import TeamAccess, team_access

P = ParamSpec("P")
TeamView = Callable[Concatenate[HttpRequest, TeamAccess, P], HttpResponse]

# Buttons and links on team pages are shown only when their permission is granted; the views
# check again on submit, so hiding is a convenience, never the control.
UI_PERMISSIONS = (
    "team:edit",
    "team:delete",
    "member:read",
    "member:invite",
    "member:remove",
    "member:role",
    "customrole:read",
    "customrole:manage",
    "application:read",
    "application:create",
    "application:edit",
    "application:delete",
    "audit:read",
    "audit:export",
    "device:read",
    "model:read",
)


_PERMISSION_KEY = re.compile(r"the '([\w-]+:[\w-]+)' permission")


def _in_words(message: str) -> str:
    """Domain errors name permission keys (right for the API); a page says what they allow."""

    def describe(match: re.Match[str]) -> str:
        spec = PERMISSIONS.get(match.group(1))
        if spec is None:
            return match.group(0)
        return "permission to " + spec.description[0].lower() + spec.description[1:]

    return _PERMISSION_KEY.sub(describe, message)


def forbidden(request: HttpRequest, message: str, team: Any = None, hint: str = "") -> HttpResponse:
    """The 403 page: says what is missing in words, whom to ask, and where to go instead."""
    context = {"message": _in_words(message), "team": team, "hint": hint}
    return render(request, "403.html", context, status=403)


def team_page(permission: str) -> Callable[[TeamView[P]], Callable[..., HttpResponse]]:
    """Guard a team page: signed in, member of the team, holding ``permission``."""
    permission_spec(permission)  # an unknown key is a programming error, caught at import

    def decorate(view: TeamView[P]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(
            request: HttpRequest, team_slug: str, *args: P.args, **kwargs: P.kwargs
        ) -> HttpResponse:
            try:
                access = team_access(principal_from_request(request), team_slug)
            except NotFound:
                raise Http404("Team not found.") from None
            try:
                access.require(permission)
                return view(request, access, *args, **kwargs)
            except NotFound as exc:
                raise Http404(exc.message) from None
            except PermissionDenied as exc:
                return forbidden(request, exc.message, access.team)

        wrapper.permission = permission  # type: ignore[attr-defined]  # read by tests and tools
        return wrapper

    return decorate


def team_context(access: TeamAccess, nav: str, **extra: Any) -> dict[str, Any]:
    """What the team layout needs: the team, the active nav item, and what the user may do."""
    can = {key.replace(":", "_"): access.allows(key) for key in UI_PERMISSIONS}
    return {"team": access.team, "access": access, "nav": nav, "can": can, **extra}
