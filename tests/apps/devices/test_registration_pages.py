"""Registration codes and tokens on the pages: the add page issues a code for a pre-created
device, a waiting device's page shows it waiting with the code's expiry and issues a new code
(the old one stops working), and the token list shows each token's scope, use and state."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.principal import Principal
from apps.audit.models import AuditEvent
from apps.devices.models import Device, DeviceStatus, ProvisioningToken
from apps.devices.services import (
    InvalidRegistrationToken,
    device_group_create,
    device_register,
    provisioning_token_create,
    provisioning_token_revoke,
    registration_code_create,
)
from tests.apps.devices.test_pages import client_for, device_url, make_device
from tests.conftest import Acme, Globex
from tests.routes import SEALING_KEY_B64

pytestmark = pytest.mark.django_db

ADD = "/teams/acme/devices/add/"
CODE = re.compile(r'data-testid="registration-code">(MFR-[0-9A-Z-]+)<')


def shown_code(html: str) -> str:
    found = CODE.search(html)
    assert found is not None, "no registration code on the page"
    return found.group(1)


def test_add_page_issues_a_code_for_a_pre_created_device(acme_world: Acme, audit_log: Any) -> None:
    presses = device_group_create(
        principal=Principal.for_user(acme_world.olivia), team=acme_world.team, name="Presses"
    )
    response = client_for(acme_world.eddie).post(
        ADD,
        {
            "kind": "code",
            "code_name": "Oven 2",
            "code_application": "line-1",
            "code_groups": [presses.pk],
        },
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    code = shown_code(page)
    device = Device.objects.get(name="Oven 2")
    assert device.status == DeviceStatus.PENDING
    assert device.application == acme_world.line_1
    assert list(device.groups.all()) == [presses]
    assert f"--token {code} --data-dir /var/lib/manifold-edge" in page
    assert "device.registration_code.created" in audit_log(acme_world.team)
    assert not ProvisioningToken.objects.exists()
    registered, _ = device_register(token=code, name="oven-2", sealing_key_b64=SEALING_KEY_B64)
    assert registered.pk == device.pk


def test_code_form_errors_are_inline_and_create_nothing(acme_world: Acme) -> None:
    response = client_for(acme_world.olivia).post(ADD, {"kind": "code", "code_name": ""})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_code_name_error"' in page
    assert not Device.objects.exists()


def test_token_with_a_group_registers_devices_into_it(acme_world: Acme) -> None:
    presses = device_group_create(
        principal=Principal.for_user(acme_world.olivia), team=acme_world.team, name="Presses"
    )
    response = client_for(acme_world.olivia).post(
        ADD, {"kind": "token", "name": "Presses", "group": str(presses.pk)}
    )
    assert response.status_code == 200
    token = ProvisioningToken.objects.get(name="Presses")
    assert token.group == presses


def test_waiting_device_shows_expiry_and_issues_a_new_code(
    acme_world: Acme, audit_log: Any
) -> None:
    device, old_code = registration_code_create(
        principal=Principal.for_user(acme_world.olivia), team=acme_world.team, name="Oven 2"
    )
    assert device.registration_code_expires_at is not None
    client = client_for(acme_world.eddie)
    page = client.get(device_url(device)).content.decode()
    assert 'data-testid="waiting-for-registration"' in page
    assert "Waiting for registration" in page
    assert device.registration_code_expires_at.strftime("%Y-%m-%d %H:%M") in page
    assert "Issue a new code" in page

    response = client.post(device_url(device) + "registration-code/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    new_code = shown_code(response.content.decode())
    assert new_code != old_code
    assert "device.registration_code.reissued" in audit_log(acme_world.team)
    with pytest.raises(InvalidRegistrationToken):
        device_register(token=old_code, name="oven", sealing_key_b64=SEALING_KEY_B64)
    registered, _ = device_register(token=new_code, name="oven", sealing_key_b64=SEALING_KEY_B64)
    assert registered.pk == device.pk
    after = client.get(device_url(device)).content.decode()
    assert 'data-testid="waiting-for-registration"' not in after


def test_expired_code_is_said_so(acme_world: Acme) -> None:
    device, _ = registration_code_create(
        principal=Principal.for_user(acme_world.olivia), team=acme_world.team, name="Oven 2"
    )
    Device.objects.filter(pk=device.pk).update(
        registration_code_expires_at=timezone.now() - dt.timedelta(hours=1)
    )
    page = client_for(acme_world.vera).get(device_url(device)).content.decode()
    assert "Its registration code expired" in page
    assert "Issue a new code" not in page  # a viewer may not


def test_new_code_refusals_change_nothing(acme_world: Acme, globex_world: Globex) -> None:
    waiting, _ = registration_code_create(
        principal=Principal.for_user(acme_world.olivia), team=acme_world.team, name="Oven 2"
    )
    registered = make_device(acme_world.team, acme_world.olivia, "Press 1")
    before = Device.objects.get(pk=waiting.pk).registration_code_hash
    events = AuditEvent.objects.count()
    assert (
        client_for(acme_world.vera).post(device_url(waiting) + "registration-code/").status_code
        == 403
    )
    oscar = client_for(globex_world.oscar)
    assert oscar.post(device_url(waiting) + "registration-code/").status_code == 404
    assert Device.objects.get(pk=waiting.pk).registration_code_hash == before
    assert AuditEvent.objects.count() == events
    # A registered device has no code to replace: a clear refusal, nothing changed.
    refused = client_for(acme_world.olivia).post(device_url(registered) + "registration-code/")
    assert refused.status_code == 400
    assert "is already registered" in refused.content.decode()
    assert Device.objects.get(pk=registered.pk).registration_code_hash is None


def test_token_list_shows_scope_use_expiry_last_use_and_status(acme_world: Acme) -> None:
    olivia = Principal.for_user(acme_world.olivia)
    presses = device_group_create(principal=olivia, team=acme_world.team, name="Presses")
    active, raw = provisioning_token_create(
        principal=olivia,
        team=acme_world.team,
        name="Line 1 presses",
        application=acme_world.line_1,
        group=presses,
        max_uses=5,
        expires_at=timezone.now() + dt.timedelta(days=7),
    )
    device_register(token=raw, name="press-1", sealing_key_b64=SEALING_KEY_B64)
    used_up, one = provisioning_token_create(
        principal=olivia, team=acme_world.team, name="Single", max_uses=1
    )
    device_register(token=one, name="single", sealing_key_b64=SEALING_KEY_B64)
    revoked, _ = provisioning_token_create(principal=olivia, team=acme_world.team, name="Old")
    provisioning_token_revoke(principal=olivia, token=revoked)
    expired, _ = provisioning_token_create(
        principal=olivia,
        team=acme_world.team,
        name="Stale",
        expires_at=timezone.now() + dt.timedelta(minutes=1),
    )
    ProvisioningToken.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - dt.timedelta(days=1)
    )
    page = client_for(acme_world.eddie).get("/teams/acme/devices/tokens/").content.decode()

    def row(token: ProvisioningToken) -> str:
        start = page.index(f'data-token-row="{token.pk}"')
        return page[start : page.index("</tr>", start)]

    first = row(active)
    for text in ("Line 1", "Presses", "1 of 5", "just now", ">active<", "Revoke"):
        assert text in first, text
    assert active.expires_at is not None
    assert active.expires_at.strftime("%Y-%m-%d %H:%M") in first
    assert ">used up<" in row(used_up)
    assert "1 of 1" in row(used_up)
    assert ">revoked<" in row(revoked)
    assert "Revoke" not in row(revoked)
    assert ">expired<" in row(expired)
    assert "never" in row(revoked)  # never used


def test_revoke_from_the_list_redirects_and_is_audited(acme_world: Acme, audit_log: Any) -> None:
    token, _ = provisioning_token_create(
        principal=Principal.for_user(acme_world.olivia), team=acme_world.team, name="Spare"
    )
    client = client_for(acme_world.olivia)
    response = client.post(f"/teams/acme/devices/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    assert response["Location"] == "/teams/acme/devices/tokens/"
    assert "device.provisioning_token.revoked" in audit_log(acme_world.team)
    assert (
        "revoked. Devices it registered stay." in client.get(response["Location"]).content.decode()
    )
