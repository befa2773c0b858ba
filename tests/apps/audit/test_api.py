"""The audit REST API: team-scoped list, filters, detail, streamed exports, retention."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.accounts.services import token_create
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.teams.models import Application, Team

from .conftest import join, seal_now

BASE = "/api/v1/teams/{slug}/audit-events/"


def _streamed(response: Any) -> bytes:
    assert response.streaming
    return b"".join(response.streaming_content)


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _events(
    team: Team, actor: User | None, n: int, event: str = "flow.flow.edited", **extra: Any
) -> None:
    principal = Principal.system() if actor is None else Principal.for_user(actor)
    for index in range(n):
        with transaction.atomic():
            audit_record(
                event=event,
                principal=principal,
                team=team,
                after={"index": index},
                **extra,
            )
    seal_now()


@pytest.fixture
def member(auditor: User, acme_team: Team) -> User:
    return join(acme_team, auditor, "mia@acme.test", "member")


@pytest.fixture
def viewer(auditor: User, acme_team: Team) -> User:
    return join(acme_team, auditor, "vic@acme.test", "viewer")


def test_list_is_team_scoped_newest_first_and_paginated(
    auditor: User, acme_team: Team, globex_team: Team
) -> None:
    _events(acme_team, auditor, 7)
    _events(globex_team, None, 3, event="globex.secret.thing")
    response = client_for(auditor).get(BASE.format(slug="acme-audit"), {"limit": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == AuditEvent.objects.filter(team_key=acme_team.pk).count()
    seqs = [row["seq"] for row in body["results"]]
    assert seqs == sorted(seqs, reverse=True)
    assert len(seqs) == 5
    assert body["next"] is not None
    assert all(row["team_slug"] == "acme-audit" for row in body["results"])
    assert "globex.secret.thing" not in response.content.decode()


def test_list_query_count_does_not_grow_with_rows(auditor: User, acme_team: Team) -> None:
    _events(acme_team, auditor, 3)
    client = client_for(auditor)
    url = BASE.format(slug="acme-audit")
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    _events(acme_team, auditor, 30)
    with CaptureQueriesContext(connection) as large:
        assert client.get(url).status_code == 200
    assert len(large) == len(small)
    print(f"audit list API: {len(large)} queries per page (3 or 33 events)")


def test_filters(auditor: User, acme_team: Team, acme_app: Application, member: User) -> None:
    _events(acme_team, auditor, 2, event="flow.flow.edited", application=acme_app)
    _events(acme_team, member, 3, event="flow.flow.deployed")
    client = client_for(auditor)
    url = BASE.format(slug="acme-audit")

    def events(**params: Any) -> list[str]:
        response = client.get(url, {"limit": 200, **params})
        assert response.status_code == 200, response.content
        return [row["event"] for row in response.json()["results"]]

    assert set(events(event="flow.flow")) == {"flow.flow.edited", "flow.flow.deployed"}
    assert events(event="flow.flow.deployed") == ["flow.flow.deployed"] * 3
    assert events(event="flow.fl") == []  # whole segments only
    assert events(application="line-1") == ["flow.flow.edited"] * 2 + ["team.application.created"]
    assert set(events(actor="mia@")) >= {"flow.flow.deployed"}
    assert "flow.flow.edited" not in events(actor="mia@")
    assert events(actor=str(member.pk), event="flow") == ["flow.flow.deployed"] * 3
    assert events(q="deployed") == ["flow.flow.deployed"] * 3
    today = timezone.now().date()
    assert len(events(date_from=today.isoformat(), date_to=today.isoformat())) >= 5
    assert events(date_to=(today - timedelta(days=1)).isoformat()) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_from": "2026-01-02", "date_to": "2026-01-01"}, "date_to"),
        ({"actor_type": "robot"}, "actor_type"),
        ({"event": "DROP TABLE"}, "event"),
        ({"application": "no such slug!"}, "application"),
    ],
)
def test_bad_filters_are_a_clear_400(
    auditor: User, acme_team: Team, params: dict[str, str], field: str
) -> None:
    response = client_for(auditor).get(BASE.format(slug="acme-audit"), params)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_foreign_application_filter_is_404(
    auditor: User, acme_team: Team, globex_team: Team
) -> None:
    from apps.teams.services import application_create

    owner = User.objects.get(email="gary@globex.test")
    application_create(
        principal=Principal.for_user(owner), team=globex_team, name="G", slug="globex-only"
    )
    response = client_for(auditor).get(
        BASE.format(slug="acme-audit"), {"application": "globex-only"}
    )
    assert response.status_code == 404


def test_detail_and_foreign_detail(auditor: User, acme_team: Team, globex_team: Team) -> None:
    own = AuditEvent.objects.filter(team_key=acme_team.pk).first()
    foreign = AuditEvent.objects.filter(team_key=globex_team.pk).first()
    assert own is not None
    assert foreign is not None
    client = client_for(auditor)
    response = client.get(f"{BASE.format(slug='acme-audit')}{own.pk}/")
    assert response.status_code == 200
    assert response.json()["hash"] == own.hash
    assert client.get(f"{BASE.format(slug='acme-audit')}{foreign.pk}/").status_code == 404
    assert client.get(f"{BASE.format(slug='globex-audit')}{foreign.pk}/").status_code == 404


def test_roles_and_outsiders(
    auditor: User, acme_team: Team, globex_team: Team, member: User, viewer: User
) -> None:
    outsider = User.objects.get(email="gary@globex.test")
    url = BASE.format(slug="acme-audit")
    assert client_for(member).get(url).status_code == 200  # audit:read is member+
    assert client_for(viewer).get(url).status_code == 403
    assert client_for(outsider).get(url).status_code == 404
    assert APIClient().get(url).status_code in {401, 403}
    assert client_for(member).get(url + "export.csv").status_code == 403  # audit:export is owner
    assert client_for(outsider).get(url + "export.jsonl").status_code == 404


def test_csv_export_streams_every_matching_row(auditor: User, acme_team: Team) -> None:
    _events(acme_team, auditor, 12)
    with transaction.atomic():
        audit_record(
            event="test.evil.cell",
            principal=Principal.for_user(auditor),
            team=acme_team,
            target=None,
            after={"x": 1},
        )
    seal_now()
    response = client_for(auditor).get(BASE.format(slug="acme-audit") + "export.csv")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = _streamed(response).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == AuditEvent.objects.filter(team_key=acme_team.pk).count()
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)
    stored = AuditEvent.objects.get(team_key=acme_team.pk, seq=int(rows[-1]["seq"]))
    assert rows[-1]["hash"] == stored.hash


def test_csv_cells_cannot_inject_formulas(auditor: User, acme_team: Team) -> None:
    from apps.audit.services import AuditTarget

    with transaction.atomic():
        audit_record(
            event="test.evil.cell",
            principal=Principal.for_user(auditor),
            team=acme_team,
            target=AuditTarget("x.y", "1", '=HYPERLINK("http://evil")'),
        )
    response = client_for(auditor).get(
        BASE.format(slug="acme-audit") + "export.csv", {"event": "test.evil"}
    )
    rows = list(csv.DictReader(io.StringIO(_streamed(response).decode())))
    assert rows[0]["target_label"].startswith("'=")


def test_jsonl_export_lines_reverify(auditor: User, acme_team: Team) -> None:
    from apps.audit.chain import event_hash

    _events(acme_team, auditor, 5)
    response = client_for(auditor).get(BASE.format(slug="acme-audit") + "export.jsonl")
    assert response.status_code == 200
    lines = _streamed(response).decode().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == AuditEvent.objects.filter(team_key=acme_team.pk).count()
    # The export carries everything needed to check the chain offline.
    for previous, row in itertools.pairwise(rows):
        assert row["prev_hash"] == previous["hash"]
    for row in rows:
        fields = {k: v for k, v in row.items() if k not in {"id", "prev_hash", "hash"}}
        assert event_hash(fields, row["prev_hash"]) == row["hash"]


def test_export_with_a_read_only_token(auditor: User, acme_team: Team) -> None:
    created = token_create(principal=Principal.for_user(auditor), name="export", read_only=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.secret}")
    response = client.get(BASE.format(slug="acme-audit") + "export.jsonl")
    assert response.status_code == 200


def test_retention_settings_api(auditor: User, acme_team: Team, member: User) -> None:
    url = "/api/v1/teams/acme-audit/audit-settings/"
    owner = client_for(auditor)
    assert owner.get(url).json() == {"audit_retention_days": 365}
    count = AuditEvent.objects.count()
    assert (
        client_for(member).put(url, {"audit_retention_days": 30}, format="json").status_code == 403
    )
    bad = owner.put(url, {"audit_retention_days": 0}, format="json")
    assert bad.status_code == 400
    assert "audit_retention_days" in bad.json()["error"]["fields"]
    assert AuditEvent.objects.count() == count
    ok = owner.put(url, {"audit_retention_days": 30}, format="json")
    assert ok.status_code == 200
    assert owner.get(url).json() == {"audit_retention_days": 30}
    assert AuditEvent.objects.count() == count + 1
