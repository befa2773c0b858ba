"""Team, application, membership and invitation services: invariants, denials, audit rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.core.errors import Conflict, PermissionDenied, ValidationError
from apps.rbac.permissions import NO_ACCESS, Role
from apps.teams.models import (
    Application,
    ApplicationRoleOverride,
    Invitation,
    InvitationStatus,
    Membership,
    Team,
)
from apps.teams.selectors import application_list, application_override_roles
from apps.teams.services import (
    application_create,
    application_delete,
    application_override_remove,
    application_override_set,
    application_update,
    invitation_accept,
    invitation_create,
    invitation_decline,
    invitation_revoke,
    member_leave,
    member_remove,
    member_role_change,
    team_create,
    team_delete,
    team_update,
)
from tests.conftest import add_member, make_user

AuditLog = Callable[[Team | int | None], list[str]]


def membership(team: Team, user: User) -> Membership:
    return Membership.objects.select_related("team", "user").get(team=team, user=user)


def roles(team: Team) -> dict[str, str]:
    return dict(Membership.objects.filter(team=team).values_list("user__email", "role"))


# --- teams ---------------------------------------------------------------------------------


def test_team_create_makes_the_creator_owner_and_audits(db: Any, audit_log: AuditLog) -> None:
    zoe = make_user("zoe@example.test")
    team = team_create(principal=Principal.for_user(zoe), name="  Zoe's Lab ", slug="zoe-lab")
    assert team.name == "Zoe's Lab"
    assert roles(team) == {"zoe@example.test": "owner"}
    assert audit_log(team) == ["team.team.created", "team.member.added"]


@pytest.mark.parametrize("slug", ["", "Upper", "-lead", "trail-", "sp ace", "x" * 51, "ü"])
def test_team_create_rejects_bad_slugs(db: Any, slug: str) -> None:
    zoe = make_user("zoe@example.test")
    with pytest.raises(ValidationError) as caught:
        team_create(principal=Principal.for_user(zoe), name="Zoe", slug=slug)
    assert "slug" in caught.value.fields
    assert not Team.objects.exists()


def test_team_create_duplicate_slug_changes_nothing(acme: Team, oscar_outsider: User) -> None:
    with pytest.raises(ValidationError) as caught:
        team_create(principal=Principal.for_user(oscar_outsider), name="Other Acme", slug="acme")
    assert caught.value.code == "duplicate"
    assert Team.objects.filter(slug="acme").count() == 1
    assert not Membership.objects.filter(team=acme, user=oscar_outsider).exists()


def test_team_update_audits_before_and_after(
    acme: Team, olivia_owner: User, audit_log: AuditLog
) -> None:
    team_update(principal=Principal.for_user(olivia_owner), team=acme, name="Acme Works")
    acme.refresh_from_db()
    assert acme.name == "Acme Works"
    assert audit_log(acme)[-1] == "team.team.updated"


def test_team_update_to_taken_slug_changes_nothing(
    acme: Team, globex: Team, olivia_owner: User
) -> None:
    with pytest.raises(ValidationError):
        team_update(principal=Principal.for_user(olivia_owner), team=acme, slug="globex")
    acme.refresh_from_db()
    assert acme.slug == "acme"


def test_team_delete_needs_an_owner(acme: Team, eddie_editor: User) -> None:
    with pytest.raises(PermissionDenied):
        team_delete(principal=Principal.for_user(eddie_editor), team=acme)
    assert Team.objects.filter(pk=acme.pk).exists()


def test_team_delete_removes_everything_but_keeps_the_audit(
    acme: Team, line_1: Application, olivia_owner: User, vera_viewer: User, audit_log: AuditLog
) -> None:
    application_override_set(
        principal=Principal.for_user(olivia_owner),
        membership=membership(acme, vera_viewer),
        application=line_1,
        role=NO_ACCESS,
    )
    team_id, application_id = acme.pk, line_1.pk
    team_delete(principal=Principal.for_user(olivia_owner), team=acme)
    assert not Team.objects.filter(pk=team_id).exists()
    assert not Application.objects.filter(pk=application_id).exists()
    assert audit_log(team_id)[-1] == "team.team.deleted"
    assert not ApplicationRoleOverride.objects.filter(application_id=application_id).exists()


# --- applications --------------------------------------------------------------------------


def test_application_lifecycle_is_audited(
    acme: Team, olivia_owner: User, audit_log: AuditLog
) -> None:
    app = application_create(
        principal=Principal.for_user(olivia_owner),
        team=acme,
        name="Line 2",
        slug="line-2",
        description="Bottling",
    )
    application_update(
        principal=Principal.for_user(olivia_owner),
        application=app,
        description="Bottling and capping",
    )
    application_delete(principal=Principal.for_user(olivia_owner), application=app)
    assert audit_log(acme)[-3:] == [
        "team.application.created",
        "team.application.updated",
        "team.application.deleted",
    ]


def test_application_slug_is_unique_per_team_only(
    acme: Team, globex: Team, olivia_owner: User, oscar_outsider: User
) -> None:
    with pytest.raises(ValidationError) as caught:
        application_create(
            principal=Principal.for_user(olivia_owner), team=acme, name="Again", slug="line-1"
        )
    assert caught.value.fields == {"slug": ["This slug is already taken."]}
    assert Application.objects.filter(team=acme).count() == 1
    other = application_create(
        principal=Principal.for_user(oscar_outsider), team=globex, name="L1", slug="line-1"
    )
    assert other.team == globex


def test_application_update_to_taken_slug_changes_nothing(
    acme: Team, line_1: Application, olivia_owner: User
) -> None:
    app = application_create(
        principal=Principal.for_user(olivia_owner), team=acme, name="Line 2", slug="line-2"
    )
    with pytest.raises(ValidationError):
        application_update(
            principal=Principal.for_user(olivia_owner),
            application=app,
            slug="line-1",
            name="Renamed",
        )
    app.refresh_from_db()
    assert (app.slug, app.name) == ("line-2", "Line 2")


# --- roles, removal, leaving: the last owner rule -------------------------------------------


def test_member_role_change_is_audited(
    acme: Team, olivia_owner: User, vera_viewer: User, audit_log: AuditLog
) -> None:
    member_role_change(
        principal=Principal.for_user(olivia_owner),
        membership=membership(acme, vera_viewer),
        role="member",
    )
    assert roles(acme)["vera@acme.test"] == "member"
    assert audit_log(acme)[-1] == "team.member.role_changed"


def test_last_owner_cannot_be_demoted(acme: Team, olivia_owner: User, audit_log: AuditLog) -> None:
    before = (roles(acme), audit_log(acme))
    with pytest.raises(Conflict) as caught:
        member_role_change(
            principal=Principal.for_user(olivia_owner),
            membership=membership(acme, olivia_owner),
            role="member",
        )
    assert caught.value.code == "last_owner"
    assert (roles(acme), audit_log(acme)) == before


def test_last_owner_cannot_leave_or_be_removed(acme: Team, olivia_owner: User) -> None:
    before = roles(acme)
    with pytest.raises(Conflict):
        member_leave(principal=Principal.for_user(olivia_owner), team=acme)
    with pytest.raises(Conflict):
        member_remove(
            principal=Principal.for_user(olivia_owner), membership=membership(acme, olivia_owner)
        )
    assert roles(acme) == before


def test_with_two_owners_one_may_leave(
    acme: Team, olivia_owner: User, eddie_editor: User, audit_log: AuditLog
) -> None:
    member_role_change(
        principal=Principal.for_user(olivia_owner),
        membership=membership(acme, eddie_editor),
        role="owner",
    )
    member_leave(principal=Principal.for_user(olivia_owner), team=acme)
    assert roles(acme)["eddie@acme.test"] == "owner"
    assert "olivia@acme.test" not in roles(acme)
    assert audit_log(acme)[-1] == "team.member.left"
    with pytest.raises(Conflict):
        member_leave(principal=Principal.for_user(eddie_editor), team=acme)


def test_only_owners_change_roles_or_remove(
    acme: Team, eddie_editor: User, vera_viewer: User
) -> None:
    before = roles(acme)
    with pytest.raises(PermissionDenied):
        member_role_change(
            principal=Principal.for_user(eddie_editor),
            membership=membership(acme, eddie_editor),
            role="owner",
        )
    with pytest.raises(PermissionDenied):
        member_remove(
            principal=Principal.for_user(eddie_editor), membership=membership(acme, vera_viewer)
        )
    assert roles(acme) == before


def test_member_remove_and_leave_are_audited(
    acme: Team, olivia_owner: User, vera_viewer: User, dana_dashboard: User, audit_log: AuditLog
) -> None:
    member_remove(
        principal=Principal.for_user(olivia_owner), membership=membership(acme, vera_viewer)
    )
    member_leave(principal=Principal.for_user(dana_dashboard), team=acme)
    assert audit_log(acme)[-2:] == ["team.member.removed", "team.member.left"]
    assert set(roles(acme)) == {"olivia@acme.test", "eddie@acme.test"}


def test_unknown_role_is_rejected(acme: Team, olivia_owner: User, vera_viewer: User) -> None:
    with pytest.raises(ValidationError):
        member_role_change(
            principal=Principal.for_user(olivia_owner),
            membership=membership(acme, vera_viewer),
            role="admin",
        )
    assert roles(acme)["vera@acme.test"] == "viewer"


# --- application overrides: one store ------------------------------------------------------


def test_override_has_one_store_read_by_access_and_lists(
    acme: Team,
    line_1: Application,
    olivia_owner: User,
    vera_viewer: User,
    audit_log: AuditLog,
) -> None:
    vera = membership(acme, vera_viewer)
    application_override_set(
        principal=Principal.for_user(olivia_owner),
        membership=vera,
        application=line_1,
        role=NO_ACCESS,
    )
    assert application_override_roles(vera) == {line_1.pk: NO_ACCESS}
    assert list(application_list(team=acme, membership=vera)) == []
    assert audit_log(acme)[-1] == "team.application_role.set"
    application_override_set(
        principal=Principal.for_user(olivia_owner),
        membership=vera,
        application=line_1,
        role=Role.MEMBER,
    )
    assert application_override_roles(vera) == {line_1.pk: Role.MEMBER}
    override = ApplicationRoleOverride.objects.get(membership=vera)
    application_override_remove(principal=Principal.for_user(olivia_owner), override=override)
    assert application_override_roles(vera) == {}
    assert audit_log(acme)[-1] == "team.application_role.removed"


def test_an_override_in_another_team_never_reaches_this_one(
    acme: Team, line_1: Application, globex_world: Any, vera_viewer: User
) -> None:
    """RELIABILITY.md: a grant elsewhere must never widen or narrow a team-scoped answer."""
    oscar = globex_world.oscar
    add_member(globex_world.team, oscar, vera_viewer, Role.MEMBER)
    application_override_set(
        principal=Principal.for_user(oscar),
        membership=membership(globex_world.team, vera_viewer),
        application=globex_world.hq,
        role=NO_ACCESS,
    )
    vera = membership(acme, vera_viewer)
    assert list(application_list(team=acme, membership=vera)) == [line_1]
    assert application_override_roles(vera) == {}


def test_overrides_go_with_the_member_and_the_application(
    acme: Team, line_1: Application, olivia_owner: User, vera_viewer: User, dana_dashboard: User
) -> None:
    owner = Principal.for_user(olivia_owner)
    for user in (vera_viewer, dana_dashboard):
        application_override_set(
            principal=owner, membership=membership(acme, user), application=line_1, role="member"
        )
    member_remove(principal=owner, membership=membership(acme, vera_viewer))
    remaining = ApplicationRoleOverride.objects.values_list("membership__user__email", flat=True)
    assert list(remaining) == [dana_dashboard.email]
    application_delete(principal=owner, application=line_1)
    assert not ApplicationRoleOverride.objects.exists()


def test_promoting_to_owner_drops_the_members_overrides(
    acme: Team, line_1: Application, olivia_owner: User, vera_viewer: User
) -> None:
    owner = Principal.for_user(olivia_owner)
    vera = membership(acme, vera_viewer)
    application_override_set(principal=owner, membership=vera, application=line_1, role=NO_ACCESS)
    member_role_change(principal=owner, membership=vera, role=Role.OWNER)
    assert not ApplicationRoleOverride.objects.filter(membership=vera).exists()
    assert list(application_list(team=acme, membership=vera)) == [line_1]


def test_override_refuses_owners_and_foreign_applications(
    acme: Team, olivia_owner: User, vera_viewer: User, globex_world: Any
) -> None:
    with pytest.raises(ValidationError):
        application_override_set(
            principal=Principal.for_user(olivia_owner),
            membership=membership(acme, olivia_owner),
            application=acme.applications.get(),
            role="viewer",
        )
    with pytest.raises(ValidationError):
        application_override_set(
            principal=Principal.for_user(olivia_owner),
            membership=membership(acme, vera_viewer),
            application=globex_world.hq,
            role="member",
        )
    assert not ApplicationRoleOverride.objects.exists()


# --- invitations ---------------------------------------------------------------------------


def test_invitation_sends_email_and_accept_joins(
    acme: Team,
    olivia_owner: User,
    django_capture_on_commit_callbacks: Any,
    audit_log: AuditLog,
) -> None:
    newbie = make_user("newbie@example.test")
    with django_capture_on_commit_callbacks(execute=True):
        created = invitation_create(
            principal=Principal.for_user(olivia_owner),
            team=acme,
            email="NewBie@Example.test ",
            role="viewer",
        )
    assert created.invitation.email == "newbie@example.test"
    assert len(mail.outbox) == 1
    assert created.link in mail.outbox[0].body
    assert created.secret not in created.invitation.token_hash
    membership_ = invitation_accept(
        principal=Principal.for_user(newbie), invitation=created.invitation
    )
    assert membership_.role == "viewer"
    assert audit_log(acme)[-3:] == [
        "team.invitation.created",
        "team.invitation.accepted",
        "team.member.added",
    ]


def test_invitation_bad_input(acme: Team, olivia_owner: User, eddie_editor: User) -> None:
    with pytest.raises(ValidationError):
        invitation_create(
            principal=Principal.for_user(olivia_owner),
            team=acme,
            email="not-an-email",
            role="viewer",
        )
    with pytest.raises(ValidationError):
        invitation_create(
            principal=Principal.for_user(olivia_owner), team=acme, email="a@b.test", role="admin"
        )
    with pytest.raises(Conflict):
        invitation_create(
            principal=Principal.for_user(olivia_owner),
            team=acme,
            email=eddie_editor.email,
            role="viewer",
        )
    invitation_create(
        principal=Principal.for_user(olivia_owner), team=acme, email="a@b.test", role="viewer"
    )
    with pytest.raises(Conflict):
        invitation_create(
            principal=Principal.for_user(olivia_owner), team=acme, email="a@b.test", role="member"
        )
    assert Invitation.objects.filter(email="a@b.test").count() == 1


def test_expired_and_used_invitations_are_refused(acme: Team, olivia_owner: User) -> None:
    newbie = make_user("newbie@example.test")
    created = invitation_create(
        principal=Principal.for_user(olivia_owner), team=acme, email=newbie.email, role="member"
    )
    Invitation.objects.filter(pk=created.invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(Conflict) as caught:
        invitation_accept(principal=Principal.for_user(newbie), invitation=created.invitation)
    assert caught.value.code == "invitation_expired"
    assert not Membership.objects.filter(team=acme, user=newbie).exists()

    fresh = invitation_create(
        principal=Principal.for_user(olivia_owner), team=acme, email=newbie.email, role="member"
    )
    invitation_accept(principal=Principal.for_user(newbie), invitation=fresh.invitation)
    with pytest.raises(Conflict) as used:
        invitation_accept(principal=Principal.for_user(newbie), invitation=fresh.invitation)
    assert used.value.code == "invitation_used"
    with pytest.raises(Conflict):
        invitation_decline(principal=Principal.for_user(newbie), invitation=fresh.invitation)


def test_only_the_invited_address_can_answer(
    acme: Team, olivia_owner: User, oscar_outsider: User
) -> None:
    created = invitation_create(
        principal=Principal.for_user(olivia_owner),
        team=acme,
        email="someone@example.test",
        role="member",
    )
    with pytest.raises(PermissionDenied):
        invitation_accept(
            principal=Principal.for_user(oscar_outsider), invitation=created.invitation
        )
    assert not Membership.objects.filter(team=acme, user=oscar_outsider).exists()
    created.invitation.refresh_from_db()
    assert created.invitation.status == InvitationStatus.PENDING


def test_decline_and_revoke(acme: Team, olivia_owner: User, audit_log: AuditLog) -> None:
    newbie = make_user("newbie@example.test")
    first = invitation_create(
        principal=Principal.for_user(olivia_owner), team=acme, email=newbie.email, role="member"
    )
    invitation_decline(principal=Principal.for_user(newbie), invitation=first.invitation)
    second = invitation_create(
        principal=Principal.for_user(olivia_owner), team=acme, email=newbie.email, role="member"
    )
    invitation_revoke(principal=Principal.for_user(olivia_owner), invitation=second.invitation)
    with pytest.raises(Conflict):
        invitation_accept(principal=Principal.for_user(newbie), invitation=second.invitation)
    assert not Membership.objects.filter(team=acme, user=newbie).exists()
    assert audit_log(acme)[-2:] == ["team.invitation.created", "team.invitation.revoked"]
    assert "team.invitation.declined" in audit_log(acme)


def test_custom_role_holders_cannot_invite_owners(
    acme: Team, olivia_owner: User, eddie_editor: User
) -> None:
    from apps.rbac.services import custom_role_create

    inviter = custom_role_create(
        principal=Principal.for_user(olivia_owner),
        team=acme,
        name="Inviter",
        permissions=["member:invite"],
    )
    member_role_change(
        principal=Principal.for_user(olivia_owner),
        membership=membership(acme, eddie_editor),
        custom_role=inviter,
    )
    with pytest.raises(PermissionDenied):
        invitation_create(
            principal=Principal.for_user(eddie_editor),
            team=acme,
            email="alt@example.test",
            role="owner",
        )
    assert not Invitation.objects.filter(email="alt@example.test").exists()
