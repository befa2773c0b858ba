"""RELIABILITY family 30 for snapshots: a canary credential value and the team's private keys
appear nowhere readable: not in any database row (the sealed column included), log record,
audit row, API answer, export or page. Only ``snapshot_credentials`` opens them (for sealing
to a device), and only the signer ever holds the private signing key in clear."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.snapshots import keys, services
from apps.snapshots.models import Snapshot
from tests.apps.snapshots.conftest import CANARY, valid_flows
from tests.conftest import Acme

pytestmark = pytest.mark.django_db


def _database_bytes() -> bytes:
    """Every row of every table, every column, as bytes (binary columns raw)."""
    chunks: list[bytes] = []
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names()):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        chunks.append(bytes(value))
                    else:
                        chunks.append(str(value).encode())
    return b"\n".join(chunks)


def _forms(secret: bytes) -> list[bytes]:
    """The ways a secret could be written down."""
    return [
        secret,
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
        secret.hex().encode(),
    ]


def test_credential_canary_and_private_keys_appear_nowhere(
    acme_world: Acme, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[bytes] = []
    api = APIClient()
    api.force_login(acme_world.eddie)
    pages = Client()
    pages.force_login(acme_world.olivia)

    created = api.post(
        "/api/v1/teams/acme/applications/line-1/snapshots/",
        {"name": "canary", "flows": valid_flows(), "description": "with credentials"},
        format="json",
    )
    assert created.status_code == 201
    bodies.append(created.content)
    upload = pages.post(
        "/teams/acme/applications/line-1/snapshots/new/",
        {"name": "canary page", "flows_text": json.dumps(valid_flows())},
    )
    assert upload.status_code == 302
    snapshot = Snapshot.objects.get(name="canary")
    # The service that must open them does.
    assert services.snapshot_credentials(snapshot)["b1"]["password"] == CANARY

    for url in (
        "/api/v1/teams/acme/applications/line-1/snapshots/",
        f"/api/v1/teams/acme/snapshots/{snapshot.pk}/",
        f"/api/v1/teams/acme/snapshots/{snapshot.pk}/export/",
        "/api/v1/teams/acme/signing-keys/",
        "/api/v1/teams/acme/audit-events/",
        "/api/v1/teams/acme/audit-events/export.csv",
        "/api/v1/teams/acme/audit-events/export.jsonl",
    ):
        # Eddie (a member) may not read the audit log; Olivia reads and exports it.
        response = pages.get(url) if "audit" in url else api.get(url)
        assert response.status_code == 200, url
        bodies.append(_content(response))
    rotated = pages.post("/api/v1/teams/acme/signing-keys/rotate/")
    assert rotated.status_code == 201
    bodies.append(rotated.content)
    for url in (
        "/teams/acme/applications/line-1/snapshots/",
        f"/teams/acme/applications/line-1/snapshots/{snapshot.pk}/",
        f"/teams/acme/applications/line-1/snapshots/{snapshot.pk}/export/",
        "/teams/acme/applications/line-1/audit/",
    ):
        response = pages.get(url)
        assert response.status_code == 200, url
        bodies.append(_content(response))

    team_keys = list(acme_world.team.snapshots_teamkeys.all())
    assert len(team_keys) == 2
    secrets = {"credential canary": CANARY.encode()}
    for key in team_keys:
        secrets[f"signing key {key.key_id}"] = keys.signing_private_key(key)
        secrets[f"data key {key.key_id}"] = keys.data_key(key)

    database = _database_bytes()
    logs = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records).encode()
    audit = "\n".join(repr(row) for row in AuditEvent.objects.values_list()).encode()
    found = {
        f"{name} in {where}": sum(haystack.count(form) for form in _forms(secret))
        for name, secret in secrets.items()
        for where, haystack in (
            ("database", database),
            ("logs", logs),
            ("audit rows", audit),
            ("responses", b"\n".join(bodies)),
        )
    }
    assert {place: count for place, count in found.items() if count} == {}
    # The field names are not secret and are shown.
    assert b"password" in b"\n".join(bodies)


def _content(response: Any) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return bytes(response.content)
