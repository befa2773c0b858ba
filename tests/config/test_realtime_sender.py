"""Group sends leave the committing thread: a slow channel layer never holds up the request."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from channels.layers import channel_layers
from django.db import transaction
from django.test import override_settings

from apps.core.channel_layers import SQLiteChannelLayer
from apps.core.realtime import broadcast_team_event, flush_pending

pytestmark = pytest.mark.django_db(transaction=True)
GATE = threading.Event()
SENT: list[tuple[str, str]] = []


class GatedLayer(SQLiteChannelLayer):
    """The real SQLite layer, whose group sends wait until the test opens the gate."""

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await asyncio.to_thread(GATE.wait, 30)
        if message["kind"] == "fail":
            raise ConnectionError("the layer is down")
        await super().group_send(group, message)
        SENT.append((group, message["kind"]))


@pytest.fixture
def gated_layer(tmp_path: Path) -> Any:
    layers = {
        "default": {
            "BACKEND": "tests.config.test_realtime_sender.GatedLayer",
            "CONFIG": {"path": str(tmp_path / "channels.sqlite3")},
        }
    }
    GATE.clear()
    SENT.clear()
    with override_settings(CHANNEL_LAYERS=layers):
        channel_layers.backends.clear()
        yield
        GATE.set()
        flush_pending()
    channel_layers.backends.clear()


def test_commit_returns_before_the_group_send_and_the_sends_keep_their_order(
    gated_layer: None,
) -> None:
    with transaction.atomic():
        broadcast_team_event(1, "first", {})
        broadcast_team_event(1, "second", {})
    # Had the send run in the committing thread, the atomic block would still be waiting.
    assert SENT == []
    GATE.set()
    assert flush_pending(10)
    assert SENT == [("team-1", "first"), ("team-1", "second")]


def test_a_failed_send_is_logged_and_later_sends_still_go(
    gated_layer: None, caplog: pytest.LogCaptureFixture
) -> None:
    GATE.set()
    with caplog.at_level(logging.ERROR, logger="apps.core.realtime"), transaction.atomic():
        broadcast_team_event(1, "fail", {})
        broadcast_team_event(1, "after", {})
    assert flush_pending(10)
    assert SENT == [("team-1", "after")]
    assert "send to group team-1 failed (kind=fail)" in caplog.text
