"""The development instance's API: create (one per application, clear 409s), state, start,
stop, restart, delete; viewers read, editors without device:manage are refused and nothing
changes; other teams see nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from apps.devices.models import Device, HostedDesired, HostedInstance
from tests.conftest import Acme

URL = "/api/v1/teams/acme/applications/line-1/instance/"


@pytest.fixture(autouse=True)
def _ports() -> Any:
    with override_settings(HOSTED_PORTS="31800-31809"):
        yield


def test_create_read_stop_start_restart_delete(
    acme_world: Acme, olivia_api: APIClient, audit_log: Any
) -> None:
    assert olivia_api.get(URL).status_code == 404
    created = olivia_api.post(URL, {}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["driver"] == "local"
    assert body["desired"] == "running"
    assert body["device"]["name"] == "Line 1 (development)"
    assert body["device"]["status"] == "pending"
    assert (body["port"], body["status_port"]) == (31800, 31801)
    assert body["status_url"] == "http://127.0.0.1:31801/"

    again = olivia_api.post(URL, {"name": "Another"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "instance_exists"
    assert Device.objects.filter(hosted_driver="local").count() == 1

    assert olivia_api.post(URL + "stop/").json()["desired"] == "stopped"
    assert olivia_api.post(URL + "start/").json()["desired"] == "running"
    assert olivia_api.post(URL + "restart/").status_code == 200
    assert HostedInstance.objects.get().restart_requested is True
    assert olivia_api.get(URL).json()["device"]["id"] == body["device"]["id"]

    assert olivia_api.delete(URL).status_code == 204
    assert not Device.objects.filter(pk=body["device"]["id"]).exists()
    assert olivia_api.get(URL).status_code == 404
    events = audit_log(acme_world.team)
    for event in ("created", "stopped", "started", "restarted", "deleted"):
        assert f"device.hosted_instance.{event}" in events


def test_bad_bodies_are_refused(acme_world: Acme, olivia_api: APIClient) -> None:
    assert olivia_api.post(URL, {"name": 5}, format="json").status_code == 400
    assert olivia_api.post(URL, {"name": ""}, format="json").status_code == 400
    assert olivia_api.post(URL, [1], format="json").status_code == 400
    assert not HostedInstance.objects.exists()


def test_viewer_reads_but_cannot_act(
    acme_world: Acme, olivia_api: APIClient, vera_api: APIClient
) -> None:
    olivia_api.post(URL, {}, format="json")
    assert vera_api.get(URL).status_code == 200
    for method, path in (("post", "stop/"), ("post", "restart/"), ("delete", "")):
        assert getattr(vera_api, method)(URL + path).status_code == 403
    instance = HostedInstance.objects.get()
    assert instance.desired == HostedDesired.RUNNING
    assert instance.restart_requested is False


def test_outsider_sees_nothing(
    acme_world: Acme, olivia_api: APIClient, oscar_api: APIClient
) -> None:
    olivia_api.post(URL, {}, format="json")
    assert oscar_api.get(URL).status_code == 404
    assert oscar_api.post(URL + "stop/").status_code == 404
    assert HostedInstance.objects.get().desired == HostedDesired.RUNNING


def test_ports_exhausted_is_a_409(acme_world: Acme, olivia_api: APIClient) -> None:
    with override_settings(HOSTED_PORTS="31800-31800"):
        refused = olivia_api.post(URL, {}, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "ports_exhausted"
    assert "MANIFOLD_HOSTED_PORTS" in refused.json()["error"]["message"]
    assert not Device.objects.exists()


PAGE = "/teams/acme/applications/line-1/"


def test_overview_card(acme_world: Acme, olivia_api: APIClient, vera_api: APIClient) -> None:
    page = olivia_api.get(PAGE).content.decode()
    assert "No development instance" in page
    assert "Create the development instance" in page
    created = olivia_api.post(URL, {}, format="json", HTTP_HX_REQUEST="true")
    assert created.headers["HX-Refresh"] == "true"
    page = olivia_api.get(PAGE).content.decode()
    assert "Line 1 (development)" in page
    assert 'href="http://127.0.0.1:31801/"' in page
    assert URL + "stop/" in page
    viewer_page = vera_api.get(PAGE).content.decode()
    assert "Line 1 (development)" in viewer_page
    assert URL + "stop/" not in viewer_page  # a viewer sees the state, not the buttons
