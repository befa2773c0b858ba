"""The request id of the action beside its IP and user agent.

SQLite adds a NOT NULL column by rebuilding the table, which drops the append-only trigger of
0002; it is created again right after. PostgreSQL alters the table in place and keeps it.
"""

from __future__ import annotations

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

SQLITE_TRIGGER = """
DROP TRIGGER IF EXISTS audit_auditevent_no_update;
CREATE TRIGGER audit_auditevent_no_update BEFORE UPDATE ON audit_auditevent
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
"""


def restore_sqlite_trigger(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_TRIGGER.strip().split(";\n"):
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_audit_settings")]

    operations = [
        # Reverse order on unapply: the field is removed (another rebuild), then the trigger
        # is restored by this first operation's reverse.
        migrations.RunPython(migrations.RunPython.noop, restore_sqlite_trigger, elidable=False),
        migrations.AddField(
            model_name="auditevent",
            name="request_id",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.RunPython(restore_sqlite_trigger, migrations.RunPython.noop, elidable=False),
    ]
