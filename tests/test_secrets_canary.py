"""RELIABILITY family 30: secrets never leave the place they belong.

A canary password, a personal access token secret and an invitation link secret go through the
services, the API and the pages that handle them (login, failed login, password change and reset,
token use, invitation show/accept, audit list and exports). Afterwards each canary must appear
0 times in: every row of every database table (session payloads decoded), every captured log
record (DEBUG), every audit row, every API response body and the CSV/JSON Lines exports.

The only places a secret is allowed: the response that creates it (here the services return it)
and the email that carries a link; neither is searched.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.test import APIClient

from apps.accounts.principal import Principal
from apps.accounts.services import token_create, user_create
from apps.audit.models import AuditEvent
from apps.teams.services import invitation_create, team_create

pytestmark = pytest.mark.django_db
CANARY_PASSWORD = "Canary-pw-3f9c1e7a-Q"
CANARY_NEW_PASSWORD = "Canary-new-8d2b5f0c-Z"
CANARY_RESET_PASSWORD = "Canary-reset-1a4e6b9d-K"


def _content(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return bytes(response.content).decode(errors="replace")


def _database_text() -> str:
    """Every row of every table, as text; session payloads decoded as well."""
    parts: list[str] = []
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names()):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            parts.append(f"{table}: {cursor.fetchall()!r}")
    parts.extend(json.dumps(s.get_decoded()) for s in Session.objects.all())
    return "\n".join(parts)


def _count(haystacks: Iterable[str], needle: str) -> int:
    return sum(text.count(needle) for text in haystacks)


def test_canary_secrets_appear_nowhere(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api_bodies: list[str] = []
    page_bodies: list[str] = []

    def api(client: APIClient, method: str, url: str, **kwargs: Any) -> Any:
        response = getattr(client, method)(url, **kwargs)
        api_bodies.append(_content(response))
        return response

    # The account with a canary password, its team, a canary token and a canary invitation.
    carol = user_create(email="carol@canary.test", password=CANARY_PASSWORD, full_name="Carol")
    team = team_create(principal=Principal.for_user(carol), name="Canary Works", slug="canary")
    token_secret = token_create(principal=Principal.for_user(carol), name="ci").secret
    invitee = user_create(email="ivan@canary.test", password=CANARY_PASSWORD)
    invitation_secret = invitation_create(
        principal=Principal.for_user(carol), team=team, email=invitee.email, role="viewer"
    ).secret
    canaries = {
        "password": CANARY_PASSWORD,
        "new password": CANARY_NEW_PASSWORD,
        "reset password": CANARY_RESET_PASSWORD,
        "token secret": token_secret,
        "invitation secret": invitation_secret,
    }

    # Pages: a failed and a good login with the canary, then a password change.
    browser = Client()
    page_bodies.append(
        _content(
            browser.post(
                "/accounts/login/", {"email": "nobody@canary.test", "password": CANARY_PASSWORD}
            )
        )
    )
    page_bodies.append(
        _content(browser.post("/accounts/login/", {"email": carol.email, "password": "wrong-1"}))
    )
    login = browser.post("/accounts/login/", {"email": carol.email, "password": CANARY_PASSWORD})
    assert login.status_code == 302
    page_bodies.append(_content(browser.get("/accounts/tokens/")))

    # API with the canary token: reads, a write, a refused password change, a bad token.
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {token_secret}")
    assert api(bearer, "get", "/api/v1/me/").status_code == 200
    api(bearer, "get", "/api/v1/tokens/")
    api(bearer, "get", "/api/v1/teams/")
    api(bearer, "patch", "/api/v1/teams/canary/", data={"name": "Canary Works 2"}, format="json")
    refused = api(
        bearer,
        "post",
        "/api/v1/me/password/",
        data={"old_password": CANARY_PASSWORD, "new_password": CANARY_NEW_PASSWORD},
        format="json",
    )
    assert refused.status_code == 403
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION=f"Bearer {token_secret[:-2]}xx")
    assert api(wrong, "get", "/api/v1/me/").status_code == 401

    # Session API: wrong old password, then a real change to another canary.
    session_api = APIClient()
    session_api.force_login(carol)
    bad = api(
        session_api,
        "post",
        "/api/v1/me/password/",
        data={"old_password": CANARY_NEW_PASSWORD, "new_password": CANARY_NEW_PASSWORD},
        format="json",
    )
    assert bad.status_code == 400
    changed = api(
        session_api,
        "post",
        "/api/v1/me/password/",
        data={"old_password": CANARY_PASSWORD, "new_password": CANARY_NEW_PASSWORD},
        format="json",
    )
    assert changed.status_code == 204

    # The invitation link: shown to the invitee, accepted; a stranger's attempt refused.
    carol.refresh_from_db()  # a session carries the password hash it was made with
    ivan = APIClient()
    ivan.force_login(invitee)
    stranger = APIClient()
    stranger.force_login(carol)
    api(stranger, "get", f"/api/v1/invitations/{invitation_secret}/")
    assert api(ivan, "get", f"/api/v1/invitations/{invitation_secret}/").status_code == 200
    accepted = api(ivan, "post", f"/api/v1/invitations/{invitation_secret}/accept/")
    assert accepted.status_code in {200, 201}
    api(ivan, "post", f"/api/v1/invitations/{invitation_secret}/accept/")

    # Password reset through the link, to the third canary.
    carol.refresh_from_db()
    reset = Client()
    reset.post("/accounts/password/reset/", {"email": carol.email})
    uid = urlsafe_base64_encode(force_bytes(carol.pk))
    reset_link_token = default_token_generator.make_token(carol)
    canaries["reset link token"] = reset_link_token
    link = f"/accounts/password/reset/{uid}/{reset_link_token}/"
    form_url = reset.get(link)["Location"]
    # A second, stale visit of the link answers "no longer works" (and logs nothing secret).
    Client().get(f"/accounts/password/reset/{uid}/{reset_link_token[:-3]}abc/")
    done = reset.post(
        form_url,
        {"new_password1": CANARY_RESET_PASSWORD, "new_password2": CANARY_RESET_PASSWORD},
    )
    assert done.status_code == 302

    # Audit list and exports, read by the owner.
    carol.refresh_from_db()
    owner = APIClient()
    owner.force_login(carol)
    api(owner, "get", "/api/v1/teams/canary/audit-events/", data={"limit": 500})
    csv_export = _content(owner.get("/api/v1/teams/canary/audit-events/export.csv"))
    jsonl_export = _content(owner.get("/api/v1/teams/canary/audit-events/export.jsonl"))
    assert csv_export.count("\n") > 5
    assert jsonl_export.count("\n") > 5

    database = _database_text()
    audit_rows = [repr(row) for row in AuditEvent.objects.values_list()]
    logs = [record.getMessage() + repr(record.args) for record in caplog.records]
    logs += [caplog.text]
    sinks = {
        "database": [database],
        "logs": logs,
        "audit rows": audit_rows,
        "API responses": api_bodies,
        "exports": [csv_export, jsonl_export],
        "pages": page_bodies,
    }
    counts = {
        (sink, name): _count(texts, canary)
        for sink, texts in sinks.items()
        for name, canary in canaries.items()
    }
    print(
        f"\nsecrets canary: {len(canaries)} canaries x {len(sinks)} sinks "
        f"({len(database)} database chars, {len(caplog.records)} log records, "
        f"{len(audit_rows)} audit rows, {len(api_bodies)} API bodies, "
        f"{len(csv_export) + len(jsonl_export)} export chars)"
    )
    for sink in sinks:
        print(f"  {sink}: " + ", ".join(f"{name} {counts[sink, name]}" for name in canaries))
    leaks = {key: n for key, n in counts.items() if n}
    assert leaks == {}
    # The search itself works: the canary is findable where it legitimately is.
    assert re.search(re.escape(token_secret[:12]), "prefix " + token_secret)
    assert len(audit_rows) >= 8
