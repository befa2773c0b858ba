"""Finding 4: sign-in, password-reset requests and token authentication are throttled per
account and per IP, with a clear message, a 429 and an audit event; the right password does
not get through a throttled account."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client, override_settings
from rest_framework.test import APIClient

from apps.accounts.principal import Principal
from apps.accounts.services import CreatedToken, token_create, token_revoke
from apps.accounts.throttle import LOGIN, PASSWORD_RESET, TOKEN
from apps.audit.models import AuditEvent
from tests.conftest import PASSWORD, Acme


def _log_in(client: Client, email: str, password: str, ip: str = "203.0.113.7") -> Any:
    return client.post("/accounts/login/", {"email": email, "password": password}, REMOTE_ADDR=ip)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _events(name: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event=name).order_by("seq"))


def test_thirty_wrong_passwords_then_the_right_one_is_refused(acme_world: Acme) -> None:
    client = Client()
    statuses = [_log_in(client, acme_world.eddie.email, "wrong").status_code for _ in range(30)]
    allowed = LOGIN.per_account.attempts
    assert statuses[:allowed] == [200] * allowed
    assert set(statuses[allowed:]) == {429}

    right = _log_in(client, acme_world.eddie.email, PASSWORD)
    assert right.status_code == 429
    assert "Too many failed sign-ins" in right.content.decode()
    assert "Try again in" in right.content.decode()
    assert not _signed_in(client)
    # One audit row per throttled window, naming the account, not one per refused attempt.
    throttled = _events("account.login.throttled")
    assert len(throttled) == 1
    assert throttled[0].target_id == str(acme_world.eddie.pk)
    after = throttled[0].after
    assert after is not None
    assert after["scope"] == "account"
    assert throttled[0].ip == "203.0.113.7"

    # Another account from another address is not affected.
    other = Client()
    assert _log_in(other, acme_world.vera.email, PASSWORD, ip="198.51.100.9").status_code == 302
    assert _signed_in(other)


def test_a_success_forgets_the_accounts_earlier_failures(acme_world: Acme) -> None:
    client = Client()
    for _ in range(LOGIN.per_account.attempts - 1):
        _log_in(client, acme_world.eddie.email, "wrong")
    assert _log_in(client, acme_world.eddie.email, PASSWORD).status_code == 302
    client.logout()
    for _ in range(LOGIN.per_account.attempts - 1):
        assert _log_in(client, acme_world.eddie.email, "wrong").status_code == 200
    assert _log_in(client, acme_world.eddie.email, PASSWORD).status_code == 302


def test_one_address_spraying_many_accounts_is_throttled_per_ip(acme_world: Acme) -> None:
    client = Client()
    for index in range(LOGIN.per_ip.attempts):
        response = _log_in(client, f"nobody{index}@acme.test", "wrong", ip="192.0.2.1")
        assert response.status_code == 200
    refused = _log_in(client, acme_world.olivia.email, PASSWORD, ip="192.0.2.1")
    assert refused.status_code == 429
    assert not _signed_in(client)
    after = _events("account.login.throttled")[0].after
    assert after is not None
    assert after["scope"] == "ip"
    # The same account from elsewhere still signs in: the address was throttled, not Olivia.
    assert _log_in(Client(), acme_world.olivia.email, PASSWORD, ip="192.0.2.2").status_code == 302


def test_password_reset_requests_are_throttled(acme_world: Acme) -> None:
    client = Client()
    url = "/accounts/password/reset/"
    for _ in range(PASSWORD_RESET.per_account.attempts):
        response = client.post(url, {"email": acme_world.vera.email})
        assert response.status_code == 302
    sent = len(mail.outbox)
    refused = client.post(url, {"email": acme_world.vera.email})
    assert refused.status_code == 429
    assert "Too many password-reset requests" in refused.content.decode()
    assert len(mail.outbox) == sent
    (event,) = _events("account.password_reset.throttled")
    assert event.target_id == ""  # never the address the visitor typed
    assert acme_world.vera.email not in str(event.after)


def test_token_authentication_failures_are_throttled_per_ip(
    acme_world: Acme, token_client: Callable[..., APIClient]
) -> None:
    # A guesser tries a different token each time, so only the address ties the guesses.
    guesses = [
        _bearer("mfp_" + secrets.token_urlsafe(32), "192.0.2.50")
        for _ in range(TOKEN.per_ip.attempts + 1)
    ]
    statuses = [guess.get("/api/v1/teams/").status_code for guess in guesses[:-1]]
    assert len(statuses) == TOKEN.per_ip.attempts
    assert set(statuses) == {401}
    refused = guesses[-1].get("/api/v1/teams/")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert int(refused["Retry-After"]) > 0
    assert len(_events("account.token.throttled")) == 1
    # A real token from another address works.
    assert token_client(acme_world.eddie).get("/api/v1/teams/").status_code == 200


def _bearer(secret: str, ip: str) -> APIClient:
    client = APIClient(REMOTE_ADDR=ip)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _eddies_token(acme_world: Acme, name: str) -> CreatedToken:
    return token_create(principal=Principal.for_user(acme_world.eddie), name=name)


def test_failures_with_a_revoked_token_never_lock_out_the_users_valid_token(
    acme_world: Acme,
) -> None:
    old = _eddies_token(acme_world, "old CI token")
    token_revoke(principal=Principal.for_user(acme_world.eddie), token=old.token)
    current = _eddies_token(acme_world, "current CI token")
    ip = "198.51.100.20"  # one CI machine still holding the old token besides the new one
    hammered = TOKEN.per_account.attempts + 5
    assert hammered < TOKEN.per_ip.attempts
    statuses = [_bearer(old.secret, ip).get("/api/v1/teams/").status_code for _ in range(hammered)]
    allowed = TOKEN.per_account.attempts
    assert statuses[:allowed] == [401] * allowed
    assert set(statuses[allowed:]) == {429}
    (event,) = _events("account.token.throttled")
    assert event.after is not None
    assert event.after["scope"] == "token_prefix"
    assert event.target_id == str(old.token.pk)

    # Eddie's valid token, from the same machine and from elsewhere, keeps working.
    assert _bearer(current.secret, ip).get("/api/v1/teams/").status_code == 200
    assert _bearer(current.secret, "192.0.2.99").get("/api/v1/teams/").status_code == 200


def test_a_presented_prefix_is_throttled_across_addresses(acme_world: Acme) -> None:
    old = _eddies_token(acme_world, "leaked")
    token_revoke(principal=Principal.for_user(acme_world.eddie), token=old.token)
    for index in range(TOKEN.per_account.attempts):
        response = _bearer(old.secret, f"203.0.113.{index + 1}").get("/api/v1/teams/")
        assert response.status_code == 401
    refused = _bearer(old.secret, "203.0.113.200").get("/api/v1/teams/")
    assert refused.status_code == 429
    assert "with this token" in refused.json()["error"]["message"]
    # Another (made-up) token from that address is still only a 401: the prefix was throttled.
    assert _bearer("mfp_" + "y" * 43, "203.0.113.200").get("/api/v1/teams/").status_code == 401


@pytest.mark.skipif(not os.environ.get("MANIFOLD_REDIS_URL"), reason="needs Redis")
def test_production_cache_shares_counters_through_redis(acme_world: Acme) -> None:
    location = os.environ["MANIFOLD_REDIS_URL"]
    redis_cache = {
        "default": {
            "BACKEND": "apps.core.cache.SharedRedisCache",
            "LOCATION": location,
            "KEY_PREFIX": f"throttle-test-{uuid.uuid4().hex}",
        }
    }
    with override_settings(CACHES=redis_cache):
        first, second = Client(), Client()  # two clients, one counter in Redis
        for client in [first, second] * 3:
            _log_in(client, acme_world.dana.email, "wrong")
        assert _log_in(first, acme_world.dana.email, PASSWORD).status_code == 429
