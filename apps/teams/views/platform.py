"""Platform admin pages: every user (search, status, teams count; deactivate / reactivate) and
every team (members, applications, created). Names and counts only: a platform admin reaches a
team's data the way everyone does, through a membership.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.accounts import services
from apps.accounts.access import access_user, require_platform
from apps.accounts.forms import OpenSignupSwitchForm, PlatformUserCreateForm
from apps.accounts.principal import principal_from_request
from apps.accounts.selectors import USER_STATUSES, open_signup_allowed, platform_user_list
from apps.core.errors import ManifoldError, NotFound, PermissionDenied
from apps.core.forms import add_service_error
from apps.teams.selectors import platform_team_list, team_names_solely_owned_by
from apps.teams.views.base import forbidden

PAGE_SIZE = 50
PlatformView = Callable[..., HttpResponse]


def platform_page(permission: str) -> Callable[[PlatformView], PlatformView]:
    """Guard a platform page: signed in and holding the platform ``permission`` (403 page)."""

    def decorate(view: PlatformView) -> PlatformView:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                require_platform(principal_from_request(request), permission)
                return view(request, *args, **kwargs)
            except NotFound as exc:
                raise Http404(exc.message) from None
            except PermissionDenied as exc:
                hint = "The operators of this installation can make you a platform admin."
                return forbidden(request, exc.message, hint=hint)

        wrapper.permission = permission  # type: ignore[attr-defined]  # read by tests and tools
        return wrapper

    return decorate


def _page_of(request: HttpRequest, rows: Any) -> tuple[Any, str]:
    query = request.GET.copy()
    query.pop("page", None)
    return Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page")), query.urlencode()


@platform_page("platform:read")
@require_http_methods(["GET"])
def user_list(request: HttpRequest) -> HttpResponse:
    """Every account: search by email or name, filter by status."""
    search = request.GET.get("q", "")[:200]
    status = request.GET.get("status", "all")
    if status not in USER_STATUSES:
        status = "all"
    page, filter_query = _page_of(request, platform_user_list(search=search, status=status))
    open_signup = open_signup_allowed()
    context = {
        "nav": "users",
        "open_signup": open_signup,
        "signup_form": OpenSignupSwitchForm(initial={"open_signup": "1" if open_signup else "0"}),
        "page": page,
        "search": search,
        "status": status,
        "statuses": USER_STATUSES,
        "filter_query": filter_query,
    }
    return render(request, "platform/users.html", context)


@platform_page("platform:user_manage")
@require_http_methods(["GET", "POST"])
def user_create(request: HttpRequest) -> HttpResponse:
    """Create an account for someone (e.g. before inviting them when sign-up is not for them)."""
    form = PlatformUserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_create(
                principal=principal_from_request(request),
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                full_name=form.cleaned_data["full_name"],
            )
        except ManifoldError as exc:
            add_service_error(form, exc, {"email": "email"})
        else:
            messages.success(request, f"Account {user.email} created.")
            return redirect(f"{reverse('teams:platform_users')}?{urlencode({'q': user.email})}")
    context = {"nav": "users", "form": form}
    return render(request, "platform/user_create.html", context, status=400 if form.errors else 200)


@platform_page("platform:settings_manage")
@require_http_methods(["POST"])
def signup_switch(request: HttpRequest) -> HttpResponse:
    """Allow or stop open sign-up (the switch lives on the Users page)."""
    form = OpenSignupSwitchForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose who can create an account.")
    else:
        open_signup = form.cleaned_data["open_signup"]
        services.installation_settings_update(
            principal=principal_from_request(request), open_signup=open_signup
        )
        if open_signup:
            messages.success(request, "Open sign-up is on: anyone can create an account.")
        else:
            messages.success(request, "Sign-up is by invitation only now.")
    return redirect(f"{reverse('teams:platform_users')}#signup")


@platform_page("platform:read")
@require_http_methods(["GET"])
def team_list(request: HttpRequest) -> HttpResponse:
    """Every team with its counts."""
    search = request.GET.get("q", "")[:200]
    page, filter_query = _page_of(request, platform_team_list(search=search))
    context = {"nav": "teams", "page": page, "search": search, "filter_query": filter_query}
    return render(request, "platform/teams.html", context)


def _set_active(request: HttpRequest, user_id: int, active: bool) -> HttpResponse:
    principal = principal_from_request(request)
    target = access_user(principal, user_id, "platform:user_manage")
    if request.method == "POST":
        change = services.user_reactivate if active else services.user_deactivate
        try:
            change(principal=principal, user=target)
        except ManifoldError as exc:
            messages.error(request, exc.message)
        else:
            done = "reactivated" if active else "deactivated"
            messages.success(request, f"{target.email} {done}.")
        return redirect(reverse("teams:platform_users") + "?" + urlencode({"q": target.email}))
    teams_count = platform_user_list().get(pk=target.pk).teams_count  # type: ignore[attr-defined]  # annotated by the selector
    context = {
        "nav": "users",
        "target": target,
        "active": active,
        "teams_count": teams_count,
        # Deactivating a team's only owner leaves nobody able to manage it: say so first.
        "sole_owner_of": [] if active else team_names_solely_owned_by(target),
    }
    return render(request, "platform/user_confirm.html", context)


@platform_page("platform:user_manage")
@require_http_methods(["GET", "POST"])
def user_deactivate(request: HttpRequest, user_id: int) -> HttpResponse:
    """Confirm, then switch the account off: sessions, tokens and sockets stop at once."""
    return _set_active(request, user_id, active=False)


@platform_page("platform:user_manage")
@require_http_methods(["GET", "POST"])
def user_reactivate(request: HttpRequest, user_id: int) -> HttpResponse:
    """Confirm, then switch a deactivated account back on."""
    return _set_active(request, user_id, active=True)
