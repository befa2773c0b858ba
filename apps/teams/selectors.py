"""Reads of teams, applications, members and invitations; always filtered to one team."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Q, QuerySet
from guardian.models import UserObjectPermission
from guardian.shortcuts import get_objects_for_user

from apps.accounts.actors import Actor, actor_token, actor_user
from apps.rbac.permissions import NO_ACCESS, OVERRIDE_ROLES, Role
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

GUARDIAN_PREFIX = "application_role_"


def team_list_for_user(user: User) -> QuerySet[Team]:
    """Teams the user is a member of."""
    return Team.objects.filter(memberships__user=user)


def team_list(actor: Actor) -> QuerySet[Team]:
    """Teams the actor may see: the user's teams, narrowed to the token's teams if any."""
    teams = team_list_for_user(actor_user(actor))
    token = actor_token(actor)
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
    """Names of the teams where ``user`` is the only owner."""
    owned = Membership.objects.filter(user=user, role=Role.OWNER).values("team_id")
    return list(
        Team.objects.filter(pk__in=owned)
        .annotate(owners=Count("memberships", filter=Q(memberships__role=Role.OWNER)))
        .filter(owners=1)
        .order_by("name")
        .values_list("name", flat=True)
    )


def team_owner_count(team: Team) -> int:
    return Membership.objects.filter(team=team, role=Role.OWNER).count()


def application_override_roles(membership: Membership) -> dict[int, str]:
    """{application id: override role} for one member, read from django-guardian.

    The object ids are restricted to the member's own team *before* guardian is asked: guardian
    answers per content type, and a stale or global grant must never reach another team.
    """
    content_type = ContentType.objects.get_for_model(Application)
    team_application_ids = Application.objects.filter(team_id=membership.team_id).values_list(
        "pk", flat=True
    )
    rows = UserObjectPermission.objects.filter(
        user_id=membership.user_id,
        content_type=content_type,
        permission__codename__startswith=GUARDIAN_PREFIX,
        object_pk__in=[str(pk) for pk in team_application_ids],
    ).values_list("object_pk", "permission__codename")
    roles: dict[int, str] = {}
    for object_pk, codename in rows:
        role = codename.removeprefix(GUARDIAN_PREFIX)
        if role in OVERRIDE_ROLES:
            roles[int(object_pk)] = role
    return roles


def application_list(*, team: Team, membership: Membership) -> QuerySet[Application]:
    """The team's applications this member can see ("no access" overrides hidden)."""
    in_team = Application.objects.filter(team=team)
    hidden = get_objects_for_user(
        membership.user,
        f"teams.{GUARDIAN_PREFIX}{NO_ACCESS}",
        klass=in_team,
        with_superuser=False,
        accept_global_perms=False,
    )
    return in_team.exclude(pk__in=hidden.values("pk")).order_by("name", "id")


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
