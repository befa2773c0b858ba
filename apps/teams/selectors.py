"""Reads of teams, applications, members and invitations; always filtered to one team."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Count, Q, QuerySet

from apps.accounts.principal import Principal
from apps.rbac.permissions import FULL_OWNER_LOOKUP, NO_ACCESS
from apps.teams.models import (
    Application,
    ApplicationRoleOverride,
    Invitation,
    InvitationStatus,
    Membership,
    Team,
)

if TYPE_CHECKING:
    from apps.accounts.models import User


def team_list_for_user(user: User) -> QuerySet[Team]:
    """Teams the user is a member of."""
    return Team.objects.filter(memberships__user=user)


def team_list(principal: Principal) -> QuerySet[Team]:
    """Teams the principal may see: the user's teams, narrowed to the token's teams if any."""
    if principal.user is None:
        return Team.objects.none()
    teams = team_list_for_user(principal.user)
    token = principal.token
    if token is not None and not token.all_teams:
        teams = teams.filter(pk__in=token.teams.values("pk"))
    return teams.order_by("name", "id")


def team_detail_queryset(*, team: Team) -> QuerySet[Team]:
    """The one team a team-scoped detail endpoint may show (already resolved through access)."""
    return Team.objects.filter(pk=team.pk)


def platform_team_list(*, search: str = "") -> QuerySet[Team]:
    """Every team of the installation (for platform admins: names and counts, no team data),
    with ``members_count`` and ``applications_count``."""
    teams = Team.objects.annotate(
        members_count=Count("memberships", distinct=True),
        applications_count=Count("applications", distinct=True),
    )
    search = search.strip()
    if search:
        teams = teams.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    return teams.order_by("name", "id")


def team_names_solely_owned_by(user: User) -> list[str]:
    """Names of the teams where ``user`` is the only (full) owner."""
    owned = Membership.objects.filter(user=user, **FULL_OWNER_LOOKUP).values("team_id")
    in_team = {f"memberships__{lookup}": value for lookup, value in FULL_OWNER_LOOKUP.items()}
    return list(
        Team.objects.filter(pk__in=owned)
        .annotate(owners=Count("memberships", filter=Q(**in_team)))
        .filter(owners=1)
        .order_by("name")
        .values_list("name", flat=True)
    )


def team_owner_count(team: Team) -> int:
    return Membership.objects.filter(team=team, **FULL_OWNER_LOOKUP).count()


def application_override_roles(membership: Membership) -> dict[int, str]:
    """{application id: override role} for one member, in the member's own team only."""
    rows = ApplicationRoleOverride.objects.filter(
        membership=membership, application__team_id=membership.team_id
    ).values_list("application_id", "role")
    return dict(rows)


def application_list(*, team: Team, membership: Membership) -> QuerySet[Application]:
    """The team's applications this member can see ("no access" overrides hidden)."""
    hidden = ApplicationRoleOverride.objects.filter(
        membership=membership, application__team=team, role=NO_ACCESS
    ).values("application_id")
    return Application.objects.filter(team=team).exclude(pk__in=hidden).order_by("name", "id")


def membership_list(*, team: Team) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(team=team)
        .select_related("user", "custom_role")
        .order_by("user__email")
    )


def invitation_list(*, team: Team, pending_only: bool = False) -> QuerySet[Invitation]:
    invitations = Invitation.objects.filter(team=team).select_related("inviter")
    if pending_only:
        invitations = invitations.filter(status=InvitationStatus.PENDING)
    return invitations.order_by("-created_at", "-id")


def override_list(*, team: Team, application: Application) -> QuerySet[ApplicationRoleOverride]:
    return ApplicationRoleOverride.objects.filter(
        application=application, application__team=team, membership__team=team
    ).select_related("membership__user", "application")


def team_member_counts(teams: QuerySet[Team]) -> QuerySet[Team]:
    """Annotate each team with its number of members (one query for a list page)."""
    return teams.annotate(member_count=Count("memberships", distinct=True))
