"""teams 0002: the django-guardian override grants become the one store's rows, access unchanged.

The grants are written the way the services used to write them (a guardian object permission
``teams.application_role_<role>`` per member and application), then the migration's forward
step runs against the real tables.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

from django.apps import apps as installed_apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from guardian.models import UserObjectPermission

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.teams.models import Application, ApplicationRoleOverride, Membership
from apps.teams.selectors import application_list, application_override_roles
from apps.teams.services import application_override_set
from tests.conftest import Acme, Globex

migration = importlib.import_module("apps.teams.migrations.0002_overrides_single_store")


def _grant(user: User, role: str, object_pk: object) -> None:
    content_type = ContentType.objects.get_for_model(Application)
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type,
        codename=f"application_role_{role}",
        defaults={"name": f"Application role {role}"},
    )
    # bulk_create: guardian's save() looks the object up, and a stale grant has none.
    UserObjectPermission.objects.bulk_create(
        [
            UserObjectPermission(
                user=user,
                permission=permission,
                content_type=content_type,
                object_pk=str(object_pk),
            )
        ]
    )


def _rows() -> dict[str, str]:
    return dict(
        ApplicationRoleOverride.objects.values_list("membership__user__email", "role").order_by(
            "membership__user__email"
        )
    )


def test_grants_become_rows_and_access_is_unchanged(acme_world: Acme, globex_world: Globex) -> None:
    acme, line_1 = acme_world, acme_world.line_1
    owner = Principal.for_user(acme.olivia)
    # Written in both stores, as before: the row and the grant agree.
    application_override_set(
        principal=owner,
        membership=Membership.objects.get(team=acme.team, user=acme.dana),
        application=line_1,
        role="viewer",
    )
    _grant(acme.dana, "viewer", line_1.pk)
    # Only a grant (a lost row): access came from the grant, so the row is recreated.
    _grant(acme.vera, "none", line_1.pk)
    # Row and grant disagree: the grant decided access, so it wins.
    application_override_set(
        principal=owner,
        membership=Membership.objects.get(team=acme.team, user=acme.eddie),
        application=line_1,
        role="member",
    )
    ApplicationRoleOverride.objects.filter(membership__user=acme.eddie).update(role="viewer")
    _grant(acme.eddie, "member", line_1.pk)
    # Grants that granted nothing: a full owner, an outsider, a deleted application.
    _grant(acme.olivia, "none", line_1.pk)
    _grant(globex_world.oscar, "none", line_1.pk)
    _grant(acme.vera, "none", 987654)
    vera = Membership.objects.get(team=acme.team, user=acme.vera)

    migration.grants_to_rows(installed_apps, SimpleNamespace(connection=connection))

    assert _rows() == {
        "dana@acme.test": "viewer",
        "eddie@acme.test": "member",
        "vera@acme.test": "none",
    }
    assert application_override_roles(vera) == {line_1.pk: "none"}
    assert list(application_list(team=acme.team, membership=vera)) == []
    assert not UserObjectPermission.objects.exists()
    assert not Permission.objects.filter(codename__startswith="application_role_").exists()


def test_two_grants_on_one_application_keep_the_narrower(acme_world: Acme) -> None:
    _grant(acme_world.eddie, "member", acme_world.line_1.pk)
    _grant(acme_world.eddie, "dashboard", acme_world.line_1.pk)

    migration.grants_to_rows(installed_apps, SimpleNamespace(connection=connection))

    assert _rows() == {"eddie@acme.test": "dashboard"}


def test_the_reverse_step_writes_the_grants_back(acme_world: Acme) -> None:
    application_override_set(
        principal=Principal.for_user(acme_world.olivia),
        membership=Membership.objects.get(team=acme_world.team, user=acme_world.vera),
        application=acme_world.line_1,
        role="none",
    )

    migration.rows_to_grants(installed_apps, SimpleNamespace(connection=connection))

    grant = UserObjectPermission.objects.get()
    assert (grant.user, grant.permission.codename, grant.object_pk) == (
        acme_world.vera,
        "application_role_none",
        str(acme_world.line_1.pk),
    )
