"""Members and invitations: list, invite, change role, remove, revoke, answer an invitation."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.accounts.principal import principal_from_request
from apps.core.errors import ManifoldError, NotFound, PermissionDenied, ValidationError
from apps.core.forms import add_service_error
from apps.rbac.access import access_custom_role
from apps.rbac.models import CustomRole
from apps.rbac.permissions import ROLE_CHOICES, Role
from apps.rbac.selectors import custom_role_list
from apps.teams import selectors, services
from apps.teams.access import (
    TeamAccess,
    access_invitation,
    access_invitation_by_token,
    access_membership,
)
from apps.teams.forms import InviteForm, MemberAssignmentForm, MemberRoleForm
from apps.teams.models import InvitationStatus, Membership
from apps.teams.views.base import team_context, team_page


def _members_context(
    access: TeamAccess, invite_form: InviteForm, role_error: tuple[int, str] | None = None
) -> dict[str, object]:
    team = access.team
    invitations = (
        list(selectors.invitation_list(team=team, pending_only=True))
        if access.allows("member:invite")
        else []
    )
    return team_context(
        access,
        "members",
        memberships=selectors.membership_list(team=team),
        invitations=invitations,
        invite_form=invite_form,
        custom_roles=list(custom_role_list(team=team)) if access.allows("member:role") else [],
        role_choices=ROLE_CHOICES,
        role_error_for=role_error[0] if role_error else None,
        role_error=role_error[1] if role_error else None,
    )


@team_page("member:read")
@require_http_methods(["GET"])
def member_list(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    return render(request, "teams/members.html", _members_context(access, InviteForm()))


@team_page("member:invite")
@require_http_methods(["POST"])
def member_invite(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            created = services.invitation_create(
                principal=access.principal,
                team=access.team,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                base_url=request.build_absolute_uri("/"),
            )
        except ManifoldError as exc:
            add_service_error(form, exc)
        else:
            messages.success(
                request,
                f"Invitation sent to {created.invitation.email}. "
                "It is valid for 7 days and can be revoked below.",
            )
            return redirect("teams:members", team_slug=access.team.slug)
    return render(request, "teams/members.html", _members_context(access, form), status=400)


def _requested_role(
    request: HttpRequest, access: TeamAccess, membership: Membership
) -> tuple[str, CustomRole | None]:
    """The (role, custom role) a role change asks for: from the members page's one select
    (``assignment``: a role or ``custom:<id>``) or from the role and custom role fields."""
    custom_roles = list(custom_role_list(team=access.team))
    if "assignment" in request.POST:
        picker = MemberAssignmentForm(request.POST, custom_roles=custom_roles)
        if not picker.is_valid():
            raise ValidationError("Choose one of the roles in the list.")
        custom_id = picker.custom_role_id()
        if custom_id is None:
            return picker.cleaned_data["assignment"], None
        # Owners cannot hold a custom role: an owner given one keeps the member ladder's rank.
        role = Role.MEMBER if membership.role == Role.OWNER else membership.role
        return role, access_custom_role(access, custom_id, "member:role")
    form = MemberRoleForm(request.POST, custom_roles=custom_roles)
    if not form.is_valid():
        raise ValidationError("Choose one of the roles in the list.")
    custom_role = None
    if form.cleaned_data["custom_role"] is not None:
        custom_role = access_custom_role(access, form.cleaned_data["custom_role"], "member:role")
    return form.cleaned_data["role"], custom_role


@team_page("member:role")
@require_http_methods(["GET", "POST"])
def member_role(request: HttpRequest, access: TeamAccess, membership_id: int) -> HttpResponse:
    """Change a member's role, inline on the members page.

    The row's select posts here with htmx and gets its row back: the new role, or the same role
    with the refusal in words (answered 200 so htmx swaps it in; the row carries the outcome).
    Without htmx the answer is the members page: a redirect on success, else the page again
    with the refusal in the row and its 4xx status. A GET (the former separate page) lands on
    the member's row.
    """
    membership = access_membership(access, membership_id, "member:role")
    members_url = reverse("teams:members", kwargs={"team_slug": access.team.slug})
    if request.method == "GET":
        return redirect(f"{members_url}#member-{membership.pk}")
    error, status = None, 200
    try:
        role, custom_role = _requested_role(request, access, membership)
        services.member_role_change(
            principal=access.principal, membership=membership, role=role, custom_role=custom_role
        )
    except NotFound:
        error, status = "Choose a custom role of this team.", 400
    except ManifoldError as exc:
        error, status = exc.message, exc.status_code
    membership = selectors.membership_list(team=access.team).get(pk=membership.pk)
    if request.htmx:  # type: ignore[attr-defined]  # htmx middleware
        if error is None and membership.user_id == access.membership.user_id:
            # Their own role changed: every control on the page may differ now.
            response = HttpResponse(status=204)
            response["HX-Refresh"] = "true"
            return response
        context = _row_context(access, membership, error=error, saved=error is None)
        return render(request, "teams/_member_row.html", context)
    if error is None:
        messages.success(request, f"Role of {membership.user.email} saved.")
        return redirect(f"{members_url}#member-{membership.pk}")
    context = _members_context(access, InviteForm(), role_error=(membership.pk, error))
    return render(request, "teams/members.html", context, status=status)


def _row_context(
    access: TeamAccess, membership: Membership, *, error: str | None, saved: bool
) -> dict[str, object]:
    return team_context(
        access,
        "members",
        membership=membership,
        custom_roles=list(custom_role_list(team=access.team)),
        role_choices=ROLE_CHOICES,
        role_error=error,
        role_saved=saved,
    )


@team_page("member:remove")
@require_http_methods(["GET", "POST"])
def member_remove(request: HttpRequest, access: TeamAccess, membership_id: int) -> HttpResponse:
    membership = access_membership(access, membership_id, "member:remove")
    error = None
    if request.method == "POST":
        try:
            services.member_remove(
                principal=access.principal,
                membership=membership,
            )
        except ManifoldError as exc:
            error = exc.message
        else:
            messages.success(request, f"{membership.user.email} was removed from the team.")
            return redirect("teams:members", team_slug=access.team.slug)
    return render(
        request,
        "teams/member_remove.html",
        team_context(access, "members", membership=membership, error=error),
        status=409 if error else 200,
    )


@team_page("member:invite")
@require_http_methods(["POST"])
def invitation_revoke(request: HttpRequest, access: TeamAccess, invitation_id: int) -> HttpResponse:
    invitation = access_invitation(access, invitation_id, "member:invite")
    try:
        services.invitation_revoke(
            principal=access.principal,
            invitation=invitation,
        )
    except ManifoldError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Invitation for {invitation.email} revoked.")
    return redirect("teams:members", team_slug=access.team.slug)


@require_http_methods(["GET", "POST"])
def invitation_respond(request: HttpRequest, token: str) -> HttpResponse:
    """The page the invitation link opens: only the invited address may see and answer it.

    A visitor who is not signed in goes to sign-up for the invited address (which sends anyone
    who already has an account on to the login page, coming back here).
    """
    if not request.user.is_authenticated:
        return redirect("accounts:invited_signup", token=token)
    principal = principal_from_request(request)
    try:
        invitation = access_invitation_by_token(principal, token)
    except NotFound:
        raise Http404("This invitation link is not valid.") from None
    except PermissionDenied as exc:
        # Signed in with another address: say so, without revealing the team or the address.
        return render(
            request, "teams/invitation_other_user.html", {"message": exc.message}, status=403
        )
    error = None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "accept":
                services.invitation_accept(
                    principal=principal,
                    invitation=invitation,
                )
                messages.success(request, f"Welcome to {invitation.team.name}.")
                return redirect("teams:dashboard", team_slug=invitation.team.slug)
            if action == "decline":
                services.invitation_decline(
                    principal=principal,
                    invitation=invitation,
                )
                messages.info(request, f"You declined the invitation to {invitation.team.name}.")
                return redirect("teams:home")
            error = "Choose accept or decline."
        except ManifoldError as exc:
            error = exc.message
        invitation.refresh_from_db()
    return render(
        request,
        "teams/invitation.html",
        {
            "invitation": invitation,
            "error": error,
            "is_pending": invitation.status == InvitationStatus.PENDING
            and not invitation.is_expired,
        },
        status=400 if error else 200,
    )
