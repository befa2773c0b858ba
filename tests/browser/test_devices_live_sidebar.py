"""The device page's live sidebar against a scripted device stream (the browser side of
ws/teams/<team>/devices/<id>/live/): rendering, gaps, pause, clear, the 500-item bound, and
resuming with ``since`` after a lost socket."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.apps.devices.test_pages import make_device
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, Acme

pytestmark = pytest.mark.browser
LIVE = "**/ws/teams/*/devices/*/live/**"


def debug(seq: int, **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": "debug", "time": 1_764_000_000 + seq, **fields}


class ScriptedStream:
    """Stands in for the platform's live socket: records each connection, sends frames."""

    def __init__(self, page: Any) -> None:
        self.sockets: list[Any] = []
        page.route_web_socket(LIVE, self._connected)

    def _connected(self, socket: Any) -> None:
        self.sockets.append(socket)

    def send(self, frame: dict[str, Any]) -> None:
        self.sockets[-1].send(json.dumps(frame))


def open_device_page(acme: Acme, server: str, new_page: Callable[..., Any]) -> tuple[Any, Any]:
    device = make_device(acme.team, acme.olivia, "Motor A")
    page = new_page(width=1440, height=900)
    stream = ScriptedStream(page)
    log_in(page, server, acme.vera.email, PASSWORD)
    page.goto(f"{server}/teams/acme/devices/{device.pk}/")
    expect(page.locator("[data-stream-status]")).to_have_attribute("data-state", "live")
    return page, stream


def test_debug_status_and_log_items_render_like_the_node_red_sidebar(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    page, stream = open_device_page(acme_world, server, new_page)
    stream.send(
        {
            "kind": "stream",
            "epoch": "e1",
            "items": [
                debug(
                    1,
                    node="a1b2",
                    name="Line 3 temperature",
                    topic="line3/temp",
                    property="payload",
                    format="Object",
                    msg='{"celsius": 21.5, "ok": true}',
                ),
                {
                    "seq": 2,
                    "kind": "status",
                    "time": 1_764_000_002,
                    "node": "modbus-1",
                    "status": {"fill": "green", "shape": "dot", "text": "connected"},
                },
                {
                    "seq": 3,
                    "kind": "log",
                    "time": 1_764_000_003,
                    "level": "warn",
                    "message": "poll took 2.1 s",
                },
            ],
        }
    )
    messages = page.locator("[data-stream-list]")
    item = messages.locator(".live-debug").first
    expect(item.locator(".live-node")).to_have_text("Line 3 temperature")
    expect(item.locator(".live-topic")).to_have_text("topic: line3/temp")
    payload = item.locator("details")
    expect(payload).not_to_have_attribute("open", "")  # collapsed until asked
    expect(payload.locator("summary")).to_have_text("msg.payload : Object")
    payload.locator("summary").click()
    expect(payload.locator("pre")).to_contain_text('"celsius": 21.5')
    expect(page.locator("[data-node-status]")).to_contain_text("connected")
    expect(page.locator(".node-dot-green")).to_have_count(1)
    expect(messages.locator(".live-log")).to_contain_text("poll took 2.1 s")
    page.get_by_label("Logs").uncheck()
    expect(messages.locator(".live-log")).to_be_hidden()


def test_gaps_are_shown_never_skipped(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    page, stream = open_device_page(acme_world, server, new_page)
    stream.send({"kind": "stream", "epoch": "e1", "items": [debug(1, node="n", msg="one")]})
    stream.send({"kind": "stream", "epoch": "e1", "items": [debug(5, node="n", msg="five")]})
    stream.send({"kind": "gap", "missing": 10, "from_seq": 6, "to_seq": 15})
    gaps = page.locator(".live-gap")
    expect(gaps).to_have_count(2)
    expect(gaps.nth(0)).to_have_text("3 messages not shown")
    expect(gaps.nth(1)).to_have_text("10 messages not shown")
    # A replayed duplicate after the gap marker is not shown twice.
    stream.send({"kind": "stream", "epoch": "e1", "items": [debug(5, node="n", msg="five")]})
    expect(page.locator(".live-debug")).to_have_count(2)


def test_pause_holds_clear_empties_and_the_list_stays_bounded(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    page, stream = open_device_page(acme_world, server, new_page)
    messages = page.locator("[data-stream-list] > li")
    page.get_by_role("button", name="Pause").click()
    stream.send({"kind": "stream", "epoch": "e1", "items": [debug(1, node="n", msg="held")]})
    expect(page.locator("[data-paused-count]")).to_have_text("1")
    expect(messages).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    expect(messages).to_have_count(1)
    page.get_by_role("button", name="Clear").click()
    expect(messages).to_have_count(0)
    stream.send(
        {
            "kind": "stream",
            "epoch": "e1",
            "items": [debug(seq, node="n", msg=str(seq)) for seq in range(2, 702)],
        }
    )
    expect(messages.last.locator("pre")).to_have_text("701")
    assert messages.count() == 500


def test_a_lost_socket_reconnects_and_asks_for_what_it_missed(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    page, stream = open_device_page(acme_world, server, new_page)
    stream.send({"kind": "stream", "epoch": "e9", "items": [debug(41, node="n", msg="x")]})
    expect(page.locator(".live-debug")).to_have_count(1)
    assert "since" not in stream.sockets[0].url
    stream.sockets[0].close(code=1011, reason="server restart")
    expect(page.locator("[data-stream-status]")).to_have_attribute("data-state", "offline")
    expect(page.locator("[data-stream-label]")).to_have_text("Reconnecting…")
    expect(page.locator("[data-stream-status]")).to_have_attribute(
        "data-state", "live", timeout=15_000
    )
    assert len(stream.sockets) == 2
    assert stream.sockets[1].url.endswith("?since=41&epoch=e9")


def test_a_refused_socket_does_not_retry(
    acme_world: Acme, server: str, new_page: Callable[..., Any]
) -> None:
    page, stream = open_device_page(acme_world, server, new_page)
    stream.sockets[0].close(code=4403, reason="no permission")
    expect(page.locator("[data-stream-label]")).to_have_text("Live stream off")
    page.wait_for_timeout(2500)
    assert len(stream.sockets) == 1
