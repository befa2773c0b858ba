"""Team and application services."""

from __future__ import annotations

from django.db import transaction

from apps.accounts.principal import Principal
from apps.audit.services import audit_record
from apps.core.realtime import notify_team_access_changed
from apps.rbac.permissions import Role
from apps.teams.access import require_team_permission
from apps.teams.models import Application, Membership, Team
from apps.teams.services._common import clean_name, clean_slug, duplicate_slug, save_unique


def team_create(*, principal: Principal, name: str, slug: str) -> Team:
    """Create a team; the creator becomes its owner."""
    principal.require_writable("create teams")
    principal.require_unscoped("create teams")
    name = clean_name(name)
    slug = clean_slug(slug)
    user = principal.require_user("create a team")
    with transaction.atomic():
        if Team.objects.filter(slug=slug).exists():
            raise duplicate_slug(slug, "")
        team = Team(name=name, slug=slug)
        save_unique(team, slug, "")
        membership = Membership.objects.create(team=team, user=user, role=Role.OWNER)
        audit_record(
            event="team.team.created",
            principal=principal,
            team=team,
            target=team,
            after={"name": team.name, "slug": team.slug},
        )
        audit_record(
            event="team.member.added",
            principal=principal,
            team=team,
            target=membership,
            after={"user": user.email, "role": Role.OWNER},
        )
    return team


def team_update(
    *,
    principal: Principal,
    team: Team,
    name: str | None = None,
    slug: str | None = None,
) -> Team:
    """Rename a team or change its slug."""
    before = {"name": team.name, "slug": team.slug}
    new_name = clean_name(name) if name is not None else team.name
    new_slug = clean_slug(slug) if slug is not None else team.slug
    with transaction.atomic():
        if new_slug != team.slug and Team.objects.filter(slug=new_slug).exists():
            raise duplicate_slug(new_slug, "")
        team.name, team.slug = new_name, new_slug
        save_unique(team, new_slug, "")
        after = {"name": team.name, "slug": team.slug}
        if after != before:
            audit_record(
                event="team.team.updated",
                principal=principal,
                team=team,
                target=team,
                before=before,
                after=after,
            )
    return team


def team_delete(*, principal: Principal, team: Team) -> None:
    """Delete a team and everything it owns (owners only)."""
    with transaction.atomic():
        require_team_permission(principal, team, "team:delete")
        application_ids = list(team.applications.values_list("pk", flat=True))
        # Every open socket of the team re-checks after commit and finds no team: closed.
        notify_team_access_changed(team.pk)
        audit_record(
            event="team.team.deleted",
            principal=principal,
            team=team,
            target=team,
            before={"name": team.name, "slug": team.slug, "applications": len(application_ids)},
        )
        # Memberships pointing at custom roles are PROTECTed; drop them first.
        team.memberships.all().delete()
        team.delete()


def _application_snapshot(application: Application) -> dict[str, str]:
    return {
        "name": application.name,
        "slug": application.slug,
        "description": application.description,
    }


def _clean_description(description: str | None) -> str:
    from apps.core.errors import ValidationError

    text = (description or "").strip()
    if len(text) > 2000:
        raise ValidationError(
            "The description is too long.", fields={"description": "At most 2000 characters."}
        )
    return text


def application_create(
    *,
    principal: Principal,
    team: Team,
    name: str,
    slug: str,
    description: str = "",
) -> Application:
    """Create an application inside a team; slugs are unique per team."""
    name = clean_name(name)
    slug = clean_slug(slug)
    description = _clean_description(description)
    where = f" in team {team.slug}"
    with transaction.atomic():
        if Application.objects.filter(team=team, slug=slug).exists():
            raise duplicate_slug(slug, where)
        application = Application(team=team, name=name, slug=slug, description=description)
        save_unique(application, slug, where)
        audit_record(
            event="team.application.created",
            principal=principal,
            team=team,
            application=application,
            target=application,
            after=_application_snapshot(application),
        )
    return application


def application_update(
    *,
    principal: Principal,
    application: Application,
    name: str | None = None,
    slug: str | None = None,
    description: str | None = None,
) -> Application:
    """Change an application's name, slug or description."""
    before = _application_snapshot(application)
    new_name = clean_name(name) if name is not None else application.name
    new_slug = clean_slug(slug) if slug is not None else application.slug
    new_description = (
        _clean_description(description) if description is not None else application.description
    )
    where = f" in team {application.team.slug}"
    with transaction.atomic():
        if (
            new_slug != application.slug
            and Application.objects.filter(team_id=application.team_id, slug=new_slug).exists()
        ):
            raise duplicate_slug(new_slug, where)
        application.name, application.slug = new_name, new_slug
        application.description = new_description
        save_unique(application, new_slug, where)
        after = _application_snapshot(application)
        if after != before:
            audit_record(
                event="team.application.updated",
                principal=principal,
                team=application.team,
                application=application,
                target=application,
                before=before,
                after=after,
            )
    return application


def application_delete(*, principal: Principal, application: Application) -> None:
    """Delete an application (its overrides go with it)."""
    team = application.team
    with transaction.atomic():
        audit_record(
            event="team.application.deleted",
            principal=principal,
            team=team,
            application=application,
            target=application,
            before=_application_snapshot(application),
        )
        application.delete()
