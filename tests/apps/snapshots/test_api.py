"""Snapshot API and pages: who may list, create, read, export and delete; cross-team calls
answer 404 and create nothing; refusals are clear 4xx bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.devices.models import Device, DeviceTarget
from apps.snapshots.models import Snapshot, TeamKey
from apps.snapshots.services import snapshot_create
from tests.apps.snapshots.conftest import CANARY, invalid_flows, valid_flows
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db
LIST = "/api/v1/teams/{team}/applications/{app}/snapshots/"


def _client(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _snapshot(acme_world: Acme, name: str = "v1") -> Snapshot:
    return snapshot_create(
        principal=Principal.for_user(acme_world.olivia),
        application=acme_world.line_1,
        name=name,
        flows=valid_flows(),
        env={"LINE": "3"},
    )


def _foreign_snapshot(globex_world: Globex) -> Snapshot:
    return snapshot_create(
        principal=Principal.for_user(globex_world.oscar),
        application=globex_world.hq,
        name="g",
        flows=valid_flows(),
    )


def test_member_creates_and_everyone_reads(acme_world: Acme) -> None:
    url = LIST.format(team="acme", app="line-1")
    body = {"name": "v1", "flows": valid_flows(), "env": {"LINE": "3"}}
    created = _client(acme_world.eddie).post(url, body, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["credential_fields"] == {"b1": ["password", "user"]}
    assert data["node_types"]["mqtt-broker"] == 1
    assert data["author"] == "eddie@acme.test"
    listed = _client(acme_world.vera).get(url)
    assert listed.status_code == 200
    assert [row["name"] for row in listed.json()["results"]] == ["v1"]
    assert listed.json()["results"][0]["node_count"] == 4


def test_a_viewer_may_not_create_and_nothing_is_stored(acme_world: Acme) -> None:
    url = LIST.format(team="acme", app="line-1")
    response = _client(acme_world.vera).post(url, {"name": "v", "flows": []}, format="json")
    assert response.status_code == 403
    assert Snapshot.objects.count() == 0


def test_rejected_flows_answer_400_listing_problems(acme_world: Acme) -> None:
    url = LIST.format(team="acme", app="line-1")
    response = _client(acme_world.eddie).post(
        url, {"name": "bad", "flows": invalid_flows()}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_flows"
    assert error["fields"]["flows"] == [
        "b9 (mqtt-broker) port: Value error, port must be 1..65535, got 99999"
    ]
    assert Snapshot.objects.count() == 0


def test_too_many_nodes_is_a_clear_400(acme_world: Acme) -> None:
    url = LIST.format(team="acme", app="line-1")
    flows = [{"id": str(i), "type": "tab"} for i in range(5001)]
    response = _client(acme_world.eddie).post(url, {"name": "big", "flows": flows}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_nodes"


def test_a_foreign_application_slug_is_404_and_nothing_is_created(
    acme_world: Acme, globex_world: Globex
) -> None:
    client = _client(acme_world.olivia)
    for url in (LIST.format(team="acme", app="hq"), LIST.format(team="globex", app="hq")):
        response = client.post(url, {"name": "x", "flows": valid_flows()}, format="json")
        assert response.status_code == 404, url
        assert client.get(url).status_code == 404
    assert Snapshot.objects.count() == 0
    assert TeamKey.objects.count() == 0


def test_a_foreign_snapshot_is_404(acme_world: Acme, globex_world: Globex) -> None:
    foreign = _foreign_snapshot(globex_world)
    client = _client(acme_world.olivia)
    for suffix in ("", "export/"):
        assert client.get(f"/api/v1/teams/acme/snapshots/{foreign.pk}/{suffix}").status_code == 404
    assert client.delete(f"/api/v1/teams/acme/snapshots/{foreign.pk}/").status_code == 404
    assert Snapshot.objects.filter(pk=foreign.pk).exists()


def test_export_is_importable_flows_without_credentials(acme_world: Acme) -> None:
    snapshot = _snapshot(acme_world)
    response = _client(acme_world.vera).get(f"/api/v1/teams/acme/snapshots/{snapshot.pk}/export/")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    flows = json.loads(response.content)
    assert isinstance(flows, list)
    assert [node["id"] for node in flows] == ["t1", "b1", "i1", "d1"]
    assert all("credentials" not in node for node in flows)
    assert CANARY.encode() not in response.content


def test_delete_answers_409_while_a_target_references_it(acme_world: Acme) -> None:
    snapshot = _snapshot(acme_world)
    device = Device.objects.create(team=acme_world.team, name="press")
    DeviceTarget.objects.create(
        team=acme_world.team,
        device=device,
        snapshot=snapshot,
        generation=1,
        envelope={},
        digest="0",
    )
    url = f"/api/v1/teams/acme/snapshots/{snapshot.pk}/"
    response = _client(acme_world.eddie).delete(url)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "snapshot_in_use"
    assert Snapshot.objects.filter(pk=snapshot.pk).exists()
    assert _client(acme_world.vera).delete(url).status_code == 403


def test_signing_keys_list_and_owner_only_rotation(acme_world: Acme) -> None:
    keys_url = "/api/v1/teams/acme/signing-keys/"
    rotate_url = keys_url + "rotate/"
    assert _client(acme_world.vera).get(keys_url).json() == {"results": []}
    assert _client(acme_world.eddie).post(rotate_url).status_code == 403
    assert TeamKey.objects.count() == 0
    _snapshot(acme_world)  # credentials: the first key is made
    first = _client(acme_world.vera).get(keys_url).json()["results"]
    assert len(first) == 1
    assert first[0]["active"] is True
    assert first[0]["listed"] is True
    assert set(first[0]) == {"key_id", "public_key", "active", "created_at", "retired_at", "listed"}
    rotated = _client(acme_world.olivia).post(rotate_url)
    assert rotated.status_code == 201
    rows = _client(acme_world.vera).get(keys_url).json()["results"]
    assert [row["key_id"] for row in rows] == [rotated.json()["key_id"], first[0]["key_id"]]
    assert [row["active"] for row in rows] == [True, False]
    # The old key signed no device's target: it is not listed for devices any more.
    assert [row["listed"] for row in rows] == [True, False]
    assert AuditEvent.objects.filter(event="team.key.rotated").count() == 1


# --- pages ---------------------------------------------------------------------------------

PAGES = "/teams/acme/applications/line-1/snapshots/"


def _page_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_snapshots_tab_lists_snapshots(acme_world: Acme) -> None:
    snapshot = _snapshot(acme_world)
    response = _page_client(acme_world.vera).get(PAGES)
    assert response.status_code == 200
    content = response.content.decode()
    assert 'aria-current="page">Snapshots' in content
    assert snapshot.digest[:12] in content
    assert "New snapshot" not in content  # a viewer may not create
    assert "New snapshot" in _page_client(acme_world.eddie).get(PAGES).content.decode()


def test_new_snapshot_page_uploads_a_file(acme_world: Acme) -> None:
    upload = SimpleUploadedFile(
        "flows.json", json.dumps(valid_flows()).encode(), content_type="application/json"
    )
    response = _page_client(acme_world.eddie).post(
        PAGES + "new/", {"name": "from file", "description": "", "flows_file": upload}
    )
    assert response.status_code == 302
    snapshot = Snapshot.objects.get(name="from file")
    assert response["Location"].endswith(f"/snapshots/{snapshot.pk}/")
    detail = _page_client(acme_world.vera).get(response["Location"]).content.decode()
    assert "password, user" in detail
    assert "mqtt-broker" in detail
    assert CANARY not in detail


def test_new_snapshot_page_shows_problems_by_node(acme_world: Acme) -> None:
    response = _page_client(acme_world.eddie).post(
        PAGES + "new/", {"name": "bad", "flows_text": json.dumps(invalid_flows())}
    )
    assert response.status_code == 400
    content = response.content.decode()
    assert "<code>b9</code>" in content
    assert "port must be 1..65535" in content
    assert Snapshot.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "flows_text": "[{"}, "not valid JSON"),
        ({"name": "x"}, "Upload a flows.json file or paste"),
        ({"name": "x", "flows_text": '{"a": 1}'}, "Send a flows.json array"),
    ],
)
def test_new_snapshot_page_explains_bad_input(
    acme_world: Acme, data: dict[str, str], message: str
) -> None:
    response = _page_client(acme_world.eddie).post(PAGES + "new/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Snapshot.objects.count() == 0


def test_page_of_a_foreign_snapshot_is_404(acme_world: Acme, globex_world: Globex) -> None:
    foreign = _foreign_snapshot(globex_world)
    client = _page_client(acme_world.olivia)
    assert client.get(f"{PAGES}{foreign.pk}/").status_code == 404
    assert client.get(f"{PAGES}{foreign.pk}/export/").status_code == 404
