"""Open audit pages learn about new events through the team's channel group, after commit only."""

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from apps.accounts.models import User
from apps.accounts.principal import Principal
from apps.audit.services import audit_record
from apps.core.realtime import flush_pending, team_group_name
from apps.teams.models import Team

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_committed_event_reaches_the_team_group(
    auditor: User, acme_team: Team, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    layer = get_channel_layer()
    assert layer is not None
    channel = async_to_sync(layer.new_channel)()
    # The fixtures' own events are sent after their commits, in the background: not ours to read.
    flush_pending()
    async_to_sync(layer.group_add)(team_group_name(acme_team.pk), channel)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        row = audit_record(
            event="team.application.created", principal=Principal.for_user(auditor), team=acme_team
        )
    message = async_to_sync(layer.receive)(channel)
    assert message["kind"] == "team.application.created"
    assert message["payload"] == {"seq": row.seq, "id": row.pk}


def test_a_rolled_back_event_is_never_announced(
    auditor: User, acme_team: Team, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    def change_that_fails() -> None:
        with transaction.atomic():
            audit_record(
                event="team.application.created",
                principal=Principal.for_user(auditor),
                team=acme_team,
            )
            raise RuntimeError("the change failed")

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        change_that_fails()
    assert callbacks == []
