"""RFC 5424 forwarding to a real UDP / TCP listener on 127.0.0.1, only after commit."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.audit.services import audit_record
from apps.audit.syslog import forward_event
from apps.teams.models import Team

from .conftest import seal_now

HEADER = re.compile(
    rb"^<85>1 (?P<ts>\d{4}-\d\d-\d\dT[\d:.]+Z) (?P<host>\S+) manifold (?P<pid>\d+) "
    rb"(?P<msgid>\S+) \[manifold@32473 (?P<sd>[^\]]*)\] \xef\xbb\xbf(?P<msg>.*)$",
    re.DOTALL,
)


def test_event_is_sent_over_udp_after_commit(
    udp_listener: socket.socket,
    auditor: User,
    acme_team: Team,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    port = udp_listener.getsockname()[1]
    seal_now()  # the fixtures' own events, before forwarding is on
    with override_settings(AUDIT_SYSLOG_URL=f"udp://127.0.0.1:{port}"):
        with (
            django_capture_on_commit_callbacks(execute=False) as callbacks,
            transaction.atomic(),
        ):
            row = audit_record(
                event="team.member.added",
                principal=Principal.for_user(auditor),
                team=acme_team,
                after={"role": "member", "password": "hunter2"},
            )
        # Nothing leaves before commit: a rolled-back change must not be reported.
        udp_listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            udp_listener.recv(65535)
        # One callback forwards to syslog, one tells open audit pages to refresh.
        assert len(callbacks) == 2
        for callback in callbacks:
            callback()
        # Deferred sealing (PostgreSQL) forwards when the row is sealed, with its seq and hash.
        seal_now()
    row.refresh_from_db()
    udp_listener.settimeout(2.0)
    datagram = udp_listener.recv(65535)
    match = HEADER.match(datagram)
    assert match, datagram
    assert match["msgid"] == b"team.member.added"
    assert b'team="acme-audit"' in match["sd"]
    assert f'seq="{row.seq}"'.encode() in match["sd"]
    body = json.loads(match["msg"].decode("utf-8"))
    assert body["hash"] == row.hash
    assert body["after"] == {"role": "member", "password": "[redacted]"}
    assert b"hunter2" not in datagram


def test_event_is_sent_over_tcp_with_octet_counting(auditor: User, acme_team: Team) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(2.0)
    received: list[bytes] = []

    def accept_one() -> None:
        connection, _ = server.accept()
        with connection:
            chunks = []
            while chunk := connection.recv(65535):
                chunks.append(chunk)
            received.append(b"".join(chunks))

    thread = threading.Thread(target=accept_one)
    thread.start()
    with transaction.atomic():
        row = audit_record(
            event="team.team.updated", principal=Principal.for_user(auditor), team=acme_team
        )
    seal_now()
    row.refresh_from_db()
    with override_settings(AUDIT_SYSLOG_URL=f"tcp://127.0.0.1:{server.getsockname()[1]}"):
        assert forward_event(row) is True
    thread.join(timeout=3)
    server.close()
    length, _, message = received[0].partition(b" ")
    assert int(length) == len(message)
    assert HEADER.match(message)


def test_unreachable_collector_never_fails_the_write(auditor: User, acme_team: Team) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    with transaction.atomic():
        row = audit_record(
            event="team.team.updated", principal=Principal.for_user(auditor), team=acme_team
        )
    seal_now()
    row.refresh_from_db()
    with override_settings(AUDIT_SYSLOG_URL=f"tcp://127.0.0.1:{closed_port}"):
        assert forward_event(row) is False


def test_malformed_target_is_reported_by_the_system_check(auditor: User) -> None:
    from apps.audit.apps import check_syslog_target

    with override_settings(AUDIT_SYSLOG_URL="http://example"):
        errors = check_syslog_target()
    assert [error.id for error in errors] == ["audit.E001"]
    with override_settings(AUDIT_SYSLOG_URL="udp://127.0.0.1:5514"):
        assert check_syslog_target() == []
