"""Finding 1: "no access" to an application hides it from every view of the audit trail."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.teams.models import Application, Membership
from apps.teams.services import application_create, application_override_set, application_update
from tests.conftest import Acme

SECRET = "Zephyr Secret Line"


@pytest.fixture
def hidden(acme_world: Acme) -> Application:
    """An application Eddie (member, may read the audit log) has "no access" to."""
    olivia = Principal.for_user(acme_world.olivia)
    application = application_create(
        principal=olivia,
        team=acme_world.team,
        name=SECRET,
        slug="zephyr",
        description="Classified recipe",
    )
    eddie = Membership.objects.get(team=acme_world.team, user=acme_world.eddie)
    application_override_set(
        principal=olivia, membership=eddie, application=application, role="none"
    )
    application_update(principal=olivia, application=application, description="Recipe v2")
    return application


def _page(user: Any, url: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_hidden_application_events_leave_the_api_list_search_and_detail(
    acme_world: Acme, hidden: Application
) -> None:
    client = Client()
    client.force_login(acme_world.eddie)
    base = f"/api/v1/teams/{acme_world.team.slug}/audit-events/"
    hidden_ids = list(
        AuditEvent.objects.filter(application_key=hidden.pk).values_list("pk", flat=True)
    )
    assert len(hidden_ids) == 3  # created, override set, updated

    listed = client.get(base, {"limit": 500}).json()
    assert listed["count"] > 0
    assert not {row["id"] for row in listed["results"]} & set(hidden_ids)
    assert SECRET not in str(listed)
    assert "Recipe" not in str(listed)
    assert client.get(base, {"q": "Zephyr"}).json()["count"] == 0
    for pk in hidden_ids:
        assert client.get(f"{base}{pk}/").status_code == 404

    # The owner, who sees the application, still sees all of it.
    owner = Client()
    owner.force_login(acme_world.olivia)
    assert owner.get(base, {"q": "Zephyr"}).json()["count"] == 3


def test_hidden_application_is_absent_from_audit_page_and_dashboard(
    acme_world: Acme, hidden: Application
) -> None:
    slug = acme_world.team.slug
    audit_page = _page(acme_world.eddie, reverse("audit:team_log", args=[slug]))
    dashboard = _page(acme_world.eddie, reverse("teams:dashboard", args=[slug]))
    for html in (audit_page, dashboard):
        assert SECRET not in html
        assert "Recipe" not in html
        assert "zephyr" not in html
    # The same pages show it to the owner: the filter is per reader, not a broken page.
    assert SECRET in _page(acme_world.olivia, reverse("audit:team_log", args=[slug]))
