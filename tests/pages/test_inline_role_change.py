"""The members page changes roles inline: each row's role select posts with htmx and gets its
row back, with the new role or the refusal in words; nothing else of the page is reloaded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.rbac.services import custom_role_create
from apps.teams.models import Membership
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db
ClientFor = Callable[[User | None], Client]
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "member-1"}


def _membership(acme: Acme, user: User) -> Membership:
    return Membership.objects.get(team=acme.team, user=user)


def _pick(client: Client, membership: Membership, value: str) -> Any:
    url = f"/teams/acme/members/{membership.pk}/role/"
    return client.post(url, {"assignment": value}, **HTMX)  # type: ignore[arg-type]  # headers


def test_each_row_has_a_role_select_that_posts_with_htmx(
    acme_world: Acme, page_client: ClientFor
) -> None:
    eddie = _membership(acme_world, acme_world.eddie)
    html = page_client(acme_world.olivia).get("/teams/acme/members/").content.decode()
    row = html[html.index(f'id="member-{eddie.pk}"') :]
    row = row[: row.index("</tr>")]
    assert f'hx-post="/teams/acme/members/{eddie.pk}/role/"' in row
    assert 'hx-trigger="change"' in row
    assert f'<label for="role-{eddie.pk}" class="visually-hidden">Role of eddie@acme.test' in row
    assert '<option value="member" selected>' in row
    assert "Change role" not in html  # no separate page any more
    assert "<script" not in row  # the Content-Security-Policy allows no inline script
    # People without member:role see the role as a badge, no select.
    viewer_html = page_client(acme_world.vera).get("/teams/acme/members/").content.decode()
    assert 'name="assignment"' not in viewer_html


def test_picking_a_role_returns_the_row_with_the_new_role(
    acme_world: Acme, page_client: ClientFor
) -> None:
    eddie = _membership(acme_world, acme_world.eddie)
    response = _pick(page_client(acme_world.olivia), eddie, "viewer")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith(f'<tr id="member-{eddie.pk}">')
    assert "<html" not in html  # the row alone
    assert '<option value="viewer" selected>' in html
    assert "Saved." in html
    eddie.refresh_from_db()
    assert eddie.role == "viewer"
    (event,) = AuditEvent.objects.filter(event="team.member.role_changed", target_id=str(eddie.pk))
    assert event.after is not None
    assert event.after["role"] == "viewer"


def test_picking_a_custom_role_keeps_the_rank_and_shows_it_selected(
    acme_world: Acme, page_client: ClientFor
) -> None:
    operator = custom_role_create(
        principal=Principal.for_user(acme_world.olivia),
        team=acme_world.team,
        name="Operator",
        permissions=["flow:deploy"],
    )
    vera = _membership(acme_world, acme_world.vera)
    response = _pick(page_client(acme_world.olivia), vera, f"custom:{operator.pk}")
    assert response.status_code == 200
    assert f'<option value="custom:{operator.pk}" selected>Operator' in (response.content.decode())
    vera.refresh_from_db()
    assert (vera.role, vera.custom_role_id) == ("viewer", operator.pk)
    # Back to a plain role clears the custom role.
    _pick(page_client(acme_world.olivia), vera, "member")
    vera.refresh_from_db()
    assert (vera.role, vera.custom_role_id) == ("member", None)


def test_the_last_owner_refusal_shows_in_the_row_and_changes_nothing(
    acme_world: Acme, page_client: ClientFor
) -> None:
    olivia = _membership(acme_world, acme_world.olivia)
    before = AuditEvent.objects.count()
    response = _pick(page_client(acme_world.olivia), olivia, "viewer")
    # 200 so htmx swaps the row in; the row says what went wrong.
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="role-{olivia.pk}-error" role="alert"' in html
    assert "A team must keep at least one owner" in html
    assert 'aria-invalid="true"' in html
    assert '<option value="owner" selected>' in html  # the select shows the real role again
    olivia.refresh_from_db()
    assert olivia.role == "owner"
    assert AuditEvent.objects.count() == before


def test_refusals_in_words_for_bad_choices(
    acme_world: Acme, globex_world: Globex, page_client: ClientFor
) -> None:
    spy = custom_role_create(
        principal=Principal.for_user(globex_world.oscar),
        team=globex_world.team,
        name="Spy",
        permissions=["flow:read"],
    )
    eddie = _membership(acme_world, acme_world.eddie)
    client = page_client(acme_world.olivia)
    foreign = _pick(client, eddie, f"custom:{spy.pk}").content.decode()
    assert "Choose one of the roles in the list." in foreign
    unknown = _pick(client, eddie, "emperor").content.decode()
    assert "Choose one of the roles in the list." in unknown
    eddie.refresh_from_db()
    assert (eddie.role, eddie.custom_role_id) == ("member", None)


def test_members_without_member_role_are_refused(acme_world: Acme, page_client: ClientFor) -> None:
    eddie = _membership(acme_world, acme_world.eddie)
    response = _pick(page_client(acme_world.eddie), eddie, "owner")
    assert response.status_code == 403
    eddie.refresh_from_db()
    assert eddie.role == "member"


def test_changing_ones_own_role_reloads_the_page(acme_world: Acme, page_client: ClientFor) -> None:
    eddie = _membership(acme_world, acme_world.eddie)
    client = page_client(acme_world.olivia)
    _pick(client, eddie, "owner")
    olivia = _membership(acme_world, acme_world.olivia)
    response = _pick(client, olivia, "member")
    assert response.status_code == 204
    assert response["HX-Refresh"] == "true"
    olivia.refresh_from_db()
    assert olivia.role == "member"


def test_without_htmx_a_refusal_is_the_members_page_with_the_error_in_the_row(
    acme_world: Acme, page_client: ClientFor
) -> None:
    olivia = _membership(acme_world, acme_world.olivia)
    url = f"/teams/acme/members/{olivia.pk}/role/"
    response = page_client(acme_world.olivia).post(url, {"assignment": "viewer"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "<h1>Members</h1>" in html
    assert f'id="role-{olivia.pk}-error"' in html
    assert html.count('role="alert"') == 1  # only that row
