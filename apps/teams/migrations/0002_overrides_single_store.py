"""Application overrides keep one store: the ``ApplicationRoleOverride`` rows.

Until now each override was written twice, as a row and as a django-guardian object permission
``teams.application_role_<role>``, and access was decided from guardian. Each guardian grant
becomes (or corrects) the row of the same member and application, so access stays what it was;
rows without a grant are kept (the override pages showed them). Grants that reach no member of
the application's team, or a full owner, granted nothing and are dropped. Then the grants and
their permission codenames go.
"""

from __future__ import annotations

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

PREFIX = "application_role_"
# Most restrictive first: if a member somehow held two grants on one application, the
# narrower one wins, never a widening.
ORDER = ("none", "dashboard", "viewer", "member")


def grants_to_rows(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    database = schema_editor.connection.alias
    content_type_model = apps.get_model("contenttypes", "ContentType")
    grant_model = apps.get_model("guardian", "UserObjectPermission")
    application_model = apps.get_model("teams", "Application")
    membership_model = apps.get_model("teams", "Membership")
    override_model = apps.get_model("teams", "ApplicationRoleOverride")
    content_type = (
        content_type_model.objects.using(database)
        .filter(app_label="teams", model="application")
        .first()
    )
    if content_type is None:
        return
    grants = grant_model.objects.using(database).filter(
        content_type=content_type, permission__codename__startswith=PREFIX
    )
    wanted: dict[tuple[int, int], str] = {}
    for user_id, object_pk, codename in grants.values_list(
        "user_id", "object_pk", "permission__codename"
    ):
        role = codename.removeprefix(PREFIX)
        if role not in ORDER or not str(object_pk).isdigit():
            continue
        key = (int(user_id), int(object_pk))
        if key not in wanted or ORDER.index(role) < ORDER.index(wanted[key]):
            wanted[key] = role
    for (user_id, application_id), role in sorted(wanted.items()):
        application = application_model.objects.using(database).filter(pk=application_id).first()
        if application is None:
            continue
        membership = (
            membership_model.objects.using(database)
            .filter(team_id=application.team_id, user_id=user_id)
            .first()
        )
        if membership is None or (membership.role == "owner" and membership.custom_role_id is None):
            continue
        override_model.objects.using(database).update_or_create(
            membership=membership, application=application, defaults={"role": role}
        )
    grants.delete()
    permission_model = apps.get_model("auth", "Permission")
    permission_model.objects.using(database).filter(
        content_type=content_type, codename__startswith=PREFIX
    ).delete()


def rows_to_grants(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    database = schema_editor.connection.alias
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    grant_model = apps.get_model("guardian", "UserObjectPermission")
    override_model = apps.get_model("teams", "ApplicationRoleOverride")
    content_type, _ = content_type_model.objects.using(database).get_or_create(
        app_label="teams", model="application"
    )
    for override in override_model.objects.using(database).select_related("membership"):
        permission, _ = permission_model.objects.using(database).get_or_create(
            content_type=content_type,
            codename=f"{PREFIX}{override.role}",
            defaults={"name": f"Application role {override.role}"},
        )
        grant_model.objects.using(database).get_or_create(
            user_id=override.membership.user_id,
            permission=permission,
            content_type=content_type,
            object_pk=str(override.application_id),
        )


class Migration(migrations.Migration):
    dependencies = [
        ("teams", "0001_initial"),
        ("guardian", "0003_remove_groupobjectpermission_guardian_gr_content_ae6aec_idx_and_more"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(grants_to_rows, rows_to_grants, elidable=False),
        migrations.AlterModelOptions(name="application", options={"ordering": ("name", "id")}),
    ]
