"""Rows may be appended unsealed and sealed later by one sealer per chain.

Existing rows keep their seq, prev_hash and hash untouched, so existing chains verify as before.
PostgreSQL's UPDATE trigger now lets exactly the sealer's transition through (NULL seal fields
become set, every other column unchanged); a sealed row still never changes. SQLite always seals
inline (no UPDATE ever), so its trigger still refuses every UPDATE: it is only re-created because
SQLite rebuilds the table (and drops its triggers) to make the columns nullable.
"""

from __future__ import annotations

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

SQLITE_CREATE = """
DROP TRIGGER IF EXISTS audit_auditevent_no_update;
CREATE TRIGGER audit_auditevent_no_update BEFORE UPDATE ON audit_auditevent
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
"""

# to_jsonb(row) minus the seal fields covers every other column, including columns added later.
POSTGRES_SEALABLE = """
CREATE OR REPLACE FUNCTION audit_auditevent_refuse_update() RETURNS trigger AS $$
BEGIN
    IF OLD.hash IS NULL AND NEW.hash IS NOT NULL
       AND (to_jsonb(NEW) - 'seq' - 'prev_hash' - 'hash')
           = (to_jsonb(OLD) - 'seq' - 'prev_hash' - 'hash') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
"""
POSTGRES_REFUSE_ALL = """
CREATE OR REPLACE FUNCTION audit_auditevent_refuse_update() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
"""


def _run(schema_editor: BaseDatabaseSchemaEditor, postgres: str) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in SQLITE_CREATE.strip().split(";\n"):
            schema_editor.execute(statement)
    elif vendor == "postgresql":
        schema_editor.execute(postgres)


def allow_sealing(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _run(schema_editor, POSTGRES_SEALABLE)


def refuse_all(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _run(schema_editor, POSTGRES_REFUSE_ALL)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_auditevent_request_id")]

    operations = [
        migrations.AlterModelOptions(
            name="auditevent",
            options={
                "ordering": [
                    "-team_key",
                    models.OrderBy(models.F("seq"), descending=True, nulls_first=True),
                    "-id",
                ]
            },
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("seq__isnull", True)),
                fields=["team_key", "id"],
                name="audit_event_unsealed",
            ),
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("hash__isnull", True), ("prev_hash__isnull", True), ("seq__isnull", True)),
                    models.Q(
                        ("hash__isnull", False), ("prev_hash__isnull", False), ("seq__isnull", False)
                    ),
                    _connector="OR",
                ),
                name="audit_event_sealed_together",
            ),
        ),
        migrations.RunPython(allow_sealing, refuse_all, elidable=False),
    ]
