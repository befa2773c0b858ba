"""The audit context: set per request by the middleware (WSGI and ASGI), or by the caller."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient

from apps.accounts.principal import Principal
from apps.accounts.services import token_create, user_create
from apps.audit.models import AuditEvent
from apps.audit.sealing import audit_seal_pending
from apps.core.audit_context import (
    NO_CONTEXT,
    REQUEST_ID_HEADER,
    AuditContext,
    audit_context,
    current_audit_context,
)
from tests.conftest import Acme, session_client

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def _latest(acme: Acme) -> AuditEvent:
    # PostgreSQL appends rows unsealed; seal them as the sealer would after commit.
    audit_seal_pending(wait=True)
    return AuditEvent.objects.filter(team_key=acme.team.pk).latest("id")


def test_middleware_records_ip_user_agent_and_request_id(acme_world: Acme) -> None:
    response = session_client(acme_world.olivia).post(
        "/api/v1/teams/acme/applications/",
        {"name": "Line 2", "slug": "line-2"},
        format="json",
        REMOTE_ADDR="198.51.100.7",
        HTTP_USER_AGENT="line-tool/2.1",
        HTTP_X_REQUEST_ID="req-42.a",
    )
    assert response.status_code == 201, response.content
    assert response[REQUEST_ID_HEADER] == "req-42.a"
    row = _latest(acme_world)
    assert (row.event, row.actor_type, row.actor_id, row.actor_label) == (
        "team.application.created",
        "user",
        str(acme_world.olivia.pk),
        "olivia@acme.test",
    )
    assert (row.ip, row.user_agent, row.request_id) == ("198.51.100.7", "line-tool/2.1", "req-42.a")
    assert row.compute_hash() == row.hash


@pytest.mark.parametrize("incoming", [None, "two words", "id\r\nX-Injected: 1", "x" * 65])
def test_a_missing_or_unsafe_request_id_is_replaced(acme_world: Acme, incoming: str | None) -> None:
    headers: dict[str, Any] = {} if incoming is None else {"HTTP_X_REQUEST_ID": incoming}
    response = session_client(acme_world.olivia).patch(
        "/api/v1/teams/acme/", {"name": "Acme Works"}, format="json", **headers
    )
    assert response.status_code == 200, response.content
    row = _latest(acme_world)
    assert row.event == "team.team.updated"
    assert GENERATED_ID.match(row.request_id)
    assert response[REQUEST_ID_HEADER] == row.request_id


def test_every_response_carries_a_request_id(acme_world: Acme) -> None:
    first = session_client(acme_world.vera).get("/api/v1/teams/acme/")
    second = session_client(acme_world.vera).get("/api/v1/teams/acme/")
    assert GENERATED_ID.match(first[REQUEST_ID_HEADER])
    assert first[REQUEST_ID_HEADER] != second[REQUEST_ID_HEADER]


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_row_names_the_token_and_the_request(acme_world: Acme) -> None:
    try:
        created = await sync_to_async(token_create)(
            principal=Principal.for_user(acme_world.olivia), name="asgi"
        )
        response = await AsyncClient().post(
            "/api/v1/teams/acme/applications/",
            {"name": "Line 3", "slug": "line-3"},
            content_type="application/json",
            headers={
                "Authorization": f"Bearer {created.secret}",
                "User-Agent": "asgi-probe/1",
                "X-Request-ID": "asgi-1",
            },
        )
        row = await sync_to_async(_latest)(acme_world)
    finally:
        # The views ran in asgiref's worker thread, whose connection outlives the request
        # (CONN_MAX_AGE); close it there, or PostgreSQL cannot drop the test database.
        await sync_to_async(connections.close_all)()
    assert response.status_code == 201, response.content
    assert response[REQUEST_ID_HEADER] == "asgi-1"
    assert (row.event, row.actor_type, row.actor_id) == (
        "team.application.created",
        "token",
        str(created.token.pk),
    )
    assert (row.user_agent, row.request_id) == ("asgi-probe/1", "asgi-1")


def test_a_task_sets_its_own_context_and_is_audited_as_the_system(db: Any) -> None:
    """What a Celery task does: no request, an explicit context, ``Principal.system(job)``."""
    with audit_context(request_id="celery-7f3a"):
        user = user_create(
            email="sam@example.test", password=None, principal=Principal.system("sso-signup")
        )
    row = AuditEvent.objects.get(event="account.user.created", target_id=str(user.pk))
    assert (row.actor_type, row.actor_id, row.actor_label) == (
        "system",
        "sso-signup",
        "system: sso-signup",
    )
    assert (row.request_id, row.ip, row.user_agent) == ("celery-7f3a", None, "")
    assert current_audit_context() == NO_CONTEXT


def test_the_context_belongs_to_its_task_not_to_the_process() -> None:
    seen: list[AuditContext] = []
    with audit_context(request_id="outer"):
        worker = threading.Thread(target=lambda: seen.append(current_audit_context()))
        worker.start()
        worker.join()
        assert current_audit_context().request_id == "outer"
    assert seen == [NO_CONTEXT]


def test_the_context_cleans_what_it_is_given() -> None:
    context = AuditContext(ip="2001:0db8::0001", user_agent="u" * 600, request_id="a b")
    assert (context.ip, len(context.user_agent), context.request_id) == ("2001:db8::1", 512, "")
    assert AuditContext(ip="not-an-address").ip is None
