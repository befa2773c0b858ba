"""Account pages: login, logout, password change and reset, personal access tokens."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm, PasswordResetForm, SetPasswordForm
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_http_methods

from apps.accounts import services
from apps.accounts.access import access_token
from apps.accounts.forms import InvitedSignupForm, LoginForm, OpenSignupForm, TokenCreateForm
from apps.accounts.models import User
from apps.accounts.principal import Principal, principal_from_request
from apps.accounts.selectors import open_signup_allowed, token_list, user_exists
from apps.accounts.throttle import (
    PASSWORD_RESET,
    SIGNUP,
    Throttled,
    throttle_check,
    throttle_count,
)
from apps.core.errors import ManifoldError, NotFound
from apps.core.forms import add_service_error


class LoginView(auth_views.LoginView):
    """Email + password login; signed-in visitors go straight to their teams."""

    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "open_signup": open_signup_allowed()}

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        if form.has_error(NON_FIELD_ERRORS, "throttled"):
            response.status_code = 429
        return response


class LogoutView(auth_views.LogoutView):
    """Logging out is a POST; a GET shows a one-button confirmation instead of a 405."""

    http_method_names = ["get", "post", "options"]
    template_name = "accounts/logged_out.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return render(request, "accounts/logout_confirm.html")

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        was_signed_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_signed_in:  # added after the session was flushed, so it survives the redirect
            messages.success(request, "You are logged out. See you soon.")
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change one's own password through ``password_change`` (audited); stay signed in here."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")

    def form_valid(self, form: PasswordChangeForm) -> HttpResponse:
        try:
            principal = principal_from_request(self.request)
            services.password_change(
                principal=principal,
                user=principal.require_user(),
                old_password=form.cleaned_data["old_password"],
                new_password=form.cleaned_data["new_password1"],
            )
        except ManifoldError as exc:
            add_service_error(form, exc, {"new_password": "new_password2"})
            return self.form_invalid(form)
        update_session_auth_hash(self.request, form.user)
        messages.success(self.request, "Password changed.")
        return redirect(self.get_success_url())


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


class PasswordResetView(auth_views.PasswordResetView):
    """Mail a one-time link; ``password_reset_request`` audits it (never the link itself)."""

    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        email = form.cleaned_data["email"]
        try:
            throttle_check(PASSWORD_RESET, account=email)
        except Throttled as exc:
            form.add_error(None, exc.message)
            refused = self.form_invalid(form)
            refused.status_code = 429
            return refused
        # Every request counts, found or not: the count tells a visitor nothing about accounts.
        throttle_count(PASSWORD_RESET, account=email)
        response = super().form_valid(form)
        services.password_reset_request(
            principal=principal_from_request(self.request), email=form.cleaned_data["email"]
        )
        return response


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """The emailed link: Django checks the link, ``password_reset_complete`` does the write."""

    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form: SetPasswordForm[User]) -> HttpResponse:
        # Django's own form_valid saves through form.save(); the service replaces that write.
        session = self.request.session
        try:
            services.password_reset_complete(
                user=form.user,
                new_password=form.cleaned_data["new_password1"],
                keep_session_key=session.session_key,
            )
        except ManifoldError as exc:
            add_service_error(form, exc, {"new_password": "new_password2"})
            return self.form_invalid(form)
        session.pop(auth_views.INTERNAL_RESET_SESSION_TOKEN, None)
        if getattr(self.request.user, "pk", None) == form.user.pk:
            # Signed in as the account being reset: this login ends as well.
            logout(self.request)
        return redirect(self.get_success_url())


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"


_TOKEN_SHOWN_ONCE = "manifold_token_shown_once"  # noqa: S105  # a session key, not a secret


@login_required
@require_http_methods(["GET", "POST"])
def token_list_view(request: HttpRequest) -> HttpResponse:
    """Permission ``token:manage``: list own tokens, create one (its secret is shown once)."""
    from apps.teams.selectors import team_list_for_user

    user = principal_from_request(request).require_user()
    team_choices = [(team.slug, team.name) for team in team_list_for_user(user)]
    created = None
    if request.method == "POST":
        form = TokenCreateForm(request.POST, team_choices=team_choices)
        if form.is_valid():
            try:
                new_token = services.token_create(
                    principal=principal_from_request(request),
                    name=form.cleaned_data["name"],
                    read_only=form.cleaned_data["read_only"],
                    team_slugs=form.team_slugs(),
                    expires_in_days=form.cleaned_data["expires_in_days"],
                )
            except ManifoldError as exc:
                add_service_error(form, exc)
            else:
                # Post/redirect/get: a reload must not create a second token. The secret waits
                # in the server-side session for exactly the next GET, which pops it.
                request.session[_TOKEN_SHOWN_ONCE] = {
                    "id": new_token.token.pk,
                    "secret": new_token.secret,
                }
                return redirect("accounts:tokens")
    else:
        form = TokenCreateForm(team_choices=team_choices)
        created = request.session.pop(_TOKEN_SHOWN_ONCE, None)
    tokens = list(token_list(user=user))
    if created is not None:
        created["token"] = next((t for t in tokens if t.pk == created["id"]), None)
    response = render(
        request,
        "accounts/tokens.html",
        {
            "form": form,
            "created": created if created and created["token"] else None,
            "tokens": tokens,
            "now": timezone.now(),
        },
        status=400 if request.method == "POST" and form.errors else 200,
    )
    # The one page that ever carries the secret must not be stored by browsers or proxies.
    patch_cache_control(response, no_store=True, private=True)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    """Permission ``token:manage``: confirm, then revoke one of one's own tokens."""
    try:
        token = access_token(principal_from_request(request), token_id)
    except NotFound:
        raise Http404("Token not found.") from None
    if request.method == "POST":
        try:
            services.token_revoke(principal=principal_from_request(request), token=token)
        except ManifoldError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Token “{token.name}” revoked. It stops working now.")
        return redirect("accounts:tokens")
    return render(request, "accounts/token_revoke.html", {"token": token})


@require_http_methods(["GET", "POST"])
def invited_signup(request: HttpRequest, token: str) -> HttpResponse:
    """Sign-up from an invitation link: the account for the invited address, then the team."""
    from apps.teams.access import access_invitation_for_signup
    from apps.teams.services import invitation_accept

    invitation_url = reverse("teams:invitation", kwargs={"token": token})
    if request.user.is_authenticated:
        return redirect(invitation_url)
    try:
        invitation = access_invitation_for_signup(token)
    except NotFound as exc:
        return render(request, "accounts/signup_invalid.html", {"message": exc.message}, status=404)
    if user_exists(email=invitation.email):
        messages.info(request, f"{invitation.email} already has an account: log in to join.")
        return redirect(f"{reverse('accounts:login')}?next={invitation_url}")
    form = InvitedSignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_create(
                email=invitation.email,
                password=form.cleaned_data["password"],
                full_name=form.cleaned_data["full_name"],
            )
        except ManifoldError as exc:
            add_service_error(form, exc)
        else:
            auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            try:
                invitation_accept(principal=Principal.for_user(user), invitation=invitation)
            except ManifoldError as exc:
                messages.error(request, f"Your account is ready, but joining failed: {exc.message}")
                return redirect("teams:home")
            messages.success(request, f"Welcome to {invitation.team.name}.")
            return redirect("teams:dashboard", team_slug=invitation.team.slug)
    return render(
        request,
        "accounts/signup.html",
        {"form": form, "invitation": invitation, "token": token},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Open sign-up, when the platform admins allow it; otherwise a page saying how to get in."""
    if request.user.is_authenticated:
        return redirect("teams:home")
    if not open_signup_allowed():
        # Reading how to get in is fine (200); trying to sign up anyway is refused (403).
        status = 403 if request.method == "POST" else 200
        return render(request, "accounts/signup_closed.html", status=status)
    form = OpenSignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            throttle_check(SIGNUP, account=None)
            user = services.user_create(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                full_name=form.cleaned_data["full_name"],
            )
        except Throttled as exc:
            form.add_error(None, exc.message)
            return render(request, "accounts/signup_open.html", {"form": form}, status=429)
        except ManifoldError as exc:
            add_service_error(form, exc, {"email": "email"})
        else:
            throttle_count(SIGNUP, account=None)
            auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome to Manifold. Create a team, or ask to be invited.")
            return redirect("teams:home")
    return render(
        request, "accounts/signup_open.html", {"form": form}, status=400 if form.errors else 200
    )
