"""Members and invitations: list, invite, change role, remove, revoke, answer an invitation."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.accounts.principal import principal_from_request
from apps.core.errors import ManifoldError, NotFound, PermissionDenied
from apps.core.forms import add_service_error
from apps.rbac.access import access_custom_role
from apps.rbac.selectors import custom_role_list
from apps.teams import selectors, services
from apps.teams.access import (
    TeamAccess,
    access_invitation,
    access_invitation_by_token,
    access_membership,
)
from apps.teams.forms import InviteForm, MemberRoleForm
from apps.teams.models import InvitationStatus
from apps.teams.views.base import team_context, team_page


def _members_context(access: TeamAccess, invite_form: InviteForm) -> dict[str, object]:
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


@team_page("member:role")
@require_http_methods(["GET", "POST"])
def member_role(request: HttpRequest, access: TeamAccess, membership_id: int) -> HttpResponse:
    membership = access_membership(access, membership_id, "member:role")
    custom_roles = list(custom_role_list(team=access.team))
    form = MemberRoleForm(
        request.POST or None,
        custom_roles=custom_roles,
        initial={"role": membership.role, "custom_role": membership.custom_role_id},
    )
    if request.method == "POST" and form.is_valid():
        try:
            custom_role = None
            if form.cleaned_data["custom_role"] is not None:
                custom_role = access_custom_role(
                    access, form.cleaned_data["custom_role"], "member:role"
                )
            services.member_role_change(
                principal=access.principal,
                membership=membership,
                role=form.cleaned_data["role"],
                custom_role=custom_role,
            )
        except NotFound:
            form.add_error("custom_role", "Choose a custom role of this team.")
        except ManifoldError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Role of {membership.user.email} saved.")
            return redirect("teams:members", team_slug=access.team.slug)
    return render(
        request,
        "teams/member_role.html",
        team_context(access, "members", membership=membership, form=form),
        status=400 if form.errors else 200,
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
