"""Device group pages: list, create and edit with env vars, delete after a confirmation, one
group's devices (add, remove), and the device page's effective environment with its sources.
Refusals change nothing: a viewer may look but not edit, another team gets 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.principal import Principal
from apps.devices.models import Device, DeviceGroup
from apps.devices.services import device_group_create, device_update
from tests.apps.devices.test_pages import client_for, device_url, make_device
from tests.conftest import Acme, Globex

pytestmark = pytest.mark.django_db

GROUPS = "/teams/acme/devices/groups/"


def group_url(group: DeviceGroup, tail: str = "") -> str:
    return f"{GROUPS}{group.pk}/{tail}"


def env_rows(*pairs: tuple[str, str]) -> dict[str, list[str]]:
    return {"env_name": [name for name, _ in pairs], "env_value": [value for _, value in pairs]}


def make_group(acme: Acme, name: str, **env: str) -> DeviceGroup:
    return device_group_create(
        principal=Principal.for_user(acme.olivia), team=acme.team, name=name, env=env
    )


def snapshot_of(group: DeviceGroup) -> tuple[str, str, dict[str, str], list[int]]:
    group.refresh_from_db()
    members = sorted(group.devices.values_list("pk", flat=True))
    return group.name, group.description, dict(group.env), members


def test_fleet_links_to_the_groups_and_the_empty_list_explains_them(acme_world: Acme) -> None:
    fleet = client_for(acme_world.vera).get("/teams/acme/devices/").content.decode()
    assert f'href="{GROUPS}"' in fleet
    page = client_for(acme_world.vera).get(GROUPS).content.decode()
    assert "No device groups yet" in page
    assert "/groups/new/" not in page  # a viewer is not offered what it cannot do
    assert "/groups/new/" in client_for(acme_world.eddie).get(GROUPS).content.decode()


def test_list_shows_device_and_env_counts_in_fixed_queries(acme_world: Acme) -> None:
    presses = make_group(acme_world, "Presses", BROKER="mqtt://a", LINE="1")
    ovens = make_group(acme_world, "Ovens")
    olivia = Principal.for_user(acme_world.olivia)
    for index in range(3):
        device = make_device(acme_world.team, acme_world.olivia, f"Press {index}")
        device_update(principal=olivia, device=device, groups=[presses])
    client = client_for(acme_world.vera)
    with CaptureQueriesContext(connection) as few:
        client.get(GROUPS)
    more = make_group(acme_world, "Dryers", A="1")
    device_update(
        principal=olivia,
        device=make_device(acme_world.team, acme_world.olivia, "Dryer"),
        groups=[more, ovens],
    )
    with CaptureQueriesContext(connection) as many:
        page = client.get(GROUPS).content.decode()
    assert len(many) == len(few)
    row = page[page.index(f'data-group-row="{presses.pk}"') :]
    row = row[: row.index("</tr>")]
    assert '<td data-label="Devices" class="nowrap">3</td>' in row
    assert '<td data-label="Env vars" class="nowrap">2</td>' in row


def test_create_a_group_with_env_vars_redirects_to_it_and_is_audited(
    acme_world: Acme, audit_log: Any
) -> None:
    eddie = client_for(acme_world.eddie)
    response = eddie.post(
        GROUPS + "new/",
        {
            "name": "Line 3",
            "description": "Presses on line 3",
            **env_rows(("BROKER_URL", "mqtt://line3:1883"), ("", ""), ("LINE", "3")),
        },
    )
    group = DeviceGroup.objects.get(name="Line 3")
    assert response.status_code == 302
    assert response["Location"] == group_url(group)
    assert group.env == {"BROKER_URL": "mqtt://line3:1883", "LINE": "3"}
    assert group.description == "Presses on line 3"
    assert "device.group.created" in audit_log(acme_world.team)
    page = eddie.get(group_url(group)).content.decode()
    assert "BROKER_URL" in page
    assert "mqtt://line3:1883" in page
    assert "Device group “Line 3” created." in page


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ((("1BAD NAME", "x"),), "Invalid env var name &#x27;1BAD NAME&#x27;"),
        ((("LINE", "1"), ("LINE", "2")), "Row 2: LINE is set twice."),
        ((("", "orphan"),), "Row 1: enter a name for the value"),
        ((("BIG", "x" * 5000),), "The value of BIG must be text of at most 4096 characters."),
    ],
)
def test_bad_env_is_an_inline_error_and_nothing_is_created(
    acme_world: Acme, rows: tuple[tuple[str, str], ...], message: str
) -> None:
    response = client_for(acme_world.olivia).post(
        GROUPS + "new/", {"name": "Ovens", **env_rows(*rows)}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert 'class="field-error"' in page
    assert rows[0][0] in page  # what was typed is kept in the editor
    assert not DeviceGroup.objects.exists()


def test_duplicate_name_is_refused_inline(acme_world: Acme) -> None:
    make_group(acme_world, "Ovens")
    response = client_for(acme_world.olivia).post(GROUPS + "new/", {"name": "Ovens"})
    assert response.status_code == 400
    assert "This name is already taken." in response.content.decode()
    assert DeviceGroup.objects.count() == 1


def test_edit_changes_name_and_env_and_tells_audit(acme_world: Acme, audit_log: Any) -> None:
    group = make_group(acme_world, "Presses", OLD="1", KEEP="k")
    form = client_for(acme_world.eddie).get(group_url(group, "edit/")).content.decode()
    assert 'value="OLD"' in form
    assert 'value="KEEP"' in form
    response = client_for(acme_world.eddie).post(
        group_url(group, "edit/"),
        {"name": "Presses line 3", "description": "", **env_rows(("KEEP", "k2"), ("NEW", "n"))},
    )
    assert response.status_code == 302
    group.refresh_from_db()
    assert (group.name, group.env) == ("Presses line 3", {"KEEP": "k2", "NEW": "n"})
    assert "device.group.updated" in audit_log(acme_world.team)


def test_delete_asks_first_then_keeps_the_devices(acme_world: Acme, audit_log: Any) -> None:
    group = make_group(acme_world, "Presses", LINE="1")
    device = make_device(acme_world.team, acme_world.olivia, "Press 1")
    device_update(principal=Principal.for_user(acme_world.olivia), device=device, groups=[group])
    client = client_for(acme_world.olivia)
    confirm = client.get(group_url(group, "delete/"))
    assert confirm.status_code == 200
    text = confirm.content.decode()
    assert "Delete “Presses”?" in text
    assert "Press 1" in text
    assert "1 device leaves" in text
    assert DeviceGroup.objects.filter(pk=group.pk).exists()
    response = client.post(group_url(group, "delete/"))
    assert response.status_code == 302
    assert response["Location"] == GROUPS
    assert not DeviceGroup.objects.filter(pk=group.pk).exists()
    assert Device.objects.filter(pk=device.pk).exists()
    assert "device.group.deleted" in audit_log(acme_world.team)


def test_add_and_remove_devices_on_the_group_page(acme_world: Acme, audit_log: Any) -> None:
    group = make_group(acme_world, "Presses")
    first = make_device(acme_world.team, acme_world.olivia, "Press 1")
    second = make_device(acme_world.team, acme_world.olivia, "Press 2")
    client = client_for(acme_world.eddie)
    page = client.get(group_url(group)).content.decode()
    assert "No devices in this group yet." in page
    assert f'name="devices" value="{first.pk}"' in page

    response = client.post(group_url(group, "devices/"), {"devices": [first.pk, second.pk]})
    assert response.status_code == 302
    assert set(group.devices.values_list("pk", flat=True)) == {first.pk, second.pk}
    assert audit_log(acme_world.team).count("device.device.updated") == 2

    response = client.post(group_url(group, "devices/remove/"), {"devices": [first.pk]})
    assert response.status_code == 302
    assert list(group.devices.values_list("pk", flat=True)) == [second.pk]
    assert audit_log(acme_world.team).count("device.device.updated") == 3
    followed = client.get(group_url(group)).content.decode()
    assert "1 device removed from “Presses”." in followed


def test_adding_nothing_is_an_inline_error(acme_world: Acme) -> None:
    group = make_group(acme_world, "Presses")
    make_device(acme_world.team, acme_world.olivia, "Press 1")
    response = client_for(acme_world.olivia).post(group_url(group, "devices/"), {})
    assert response.status_code == 400
    assert "Choose at least one device." in response.content.decode()


def test_viewer_reads_but_cannot_change_anything(acme_world: Acme) -> None:
    group = make_group(acme_world, "Presses", LINE="1")
    device = make_device(acme_world.team, acme_world.olivia, "Press 1")
    before = snapshot_of(group)
    vera = client_for(acme_world.vera)
    page = vera.get(group_url(group)).content.decode()
    assert "LINE" in page
    assert "/edit/" not in page
    assert "/delete/" not in page
    assert "Add devices" not in page
    attempts = [
        vera.get(GROUPS + "new/"),
        vera.post(GROUPS + "new/", {"name": "Mine"}),
        vera.get(group_url(group, "edit/")),
        vera.post(group_url(group, "edit/"), {"name": "Renamed", **env_rows(("X", "1"))}),
        vera.post(group_url(group, "delete/")),
        vera.post(group_url(group, "devices/"), {"devices": [device.pk]}),
    ]
    assert [response.status_code for response in attempts] == [403] * len(attempts)
    assert snapshot_of(group) == before
    assert DeviceGroup.objects.count() == 1


def test_other_team_gets_404_and_nothing_changes(acme_world: Acme, globex_world: Globex) -> None:
    group = make_group(acme_world, "Presses", LINE="1")
    before = snapshot_of(group)
    oscar = client_for(globex_world.oscar)
    for url in (GROUPS, group_url(group), group_url(group, "edit/")):
        assert oscar.get(url).status_code == 404
    assert oscar.post(group_url(group, "delete/")).status_code == 404
    # Through his own team's URL, acme's group does not exist either.
    own = f"/teams/globex/devices/groups/{group.pk}/"
    assert oscar.get(own).status_code == 404
    assert oscar.post(own + "delete/").status_code == 404
    assert oscar.post(own + "edit/", {"name": "Mine"}).status_code == 404
    assert snapshot_of(group) == before


def test_foreign_device_cannot_be_added(acme_world: Acme, globex_world: Globex) -> None:
    group = make_group(acme_world, "Presses")
    foreign = make_device(globex_world.team, globex_world.oscar, "Globex press")
    response = client_for(acme_world.olivia).post(
        group_url(group, "devices/"), {"devices": [foreign.pk]}
    )
    assert response.status_code == 400
    assert not group.devices.exists()
    assert not foreign.groups.exists()


def test_device_page_shows_the_effective_env_with_each_source(acme_world: Acme) -> None:
    presses = make_group(acme_world, "Presses", BROKER="mqtt://presses", LINE="1", ZONE="P")
    zone_b = make_group(acme_world, "Zone B", ZONE="B")
    device = make_device(acme_world.team, acme_world.olivia, "Press 1")
    device_update(
        principal=Principal.for_user(acme_world.olivia),
        device=device,
        groups=[presses, zone_b],
        env={"LINE": "7", "OWN": "x"},
    )
    page = client_for(acme_world.vera).get(device_url(device)).content.decode()
    card = page[page.index('data-testid="effective-env"') :]
    card = card[: card.index("</section>")]

    def row(name: str) -> str:
        start = card.index(f'data-env-name="{name}"')
        return card[start : card.index("</tr>", start)]

    assert "mqtt://presses" in row("BROKER")
    assert "Presses" in row("BROKER")
    assert "<code>7</code>" in row("LINE")
    assert ">device<" in row("LINE")
    assert "overrides Presses" in row("LINE")
    assert "<code>B</code>" in row("ZONE")
    assert "Zone B" in row("ZONE")
    assert "overrides Presses" in row("ZONE")
    assert ">device<" in row("OWN")
    assert card.count("data-env-name=") == 4
