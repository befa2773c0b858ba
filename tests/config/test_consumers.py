"""Team websockets: who may connect (closed before accept otherwise) and what they receive."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.test import Client
from django.urls import path

from apps.accounts.principal import Principal
from apps.accounts.services import user_create
from apps.core.consumers import TeamScopedConsumer
from apps.core.realtime import (
    broadcast_team_event,
    flush_pending,
    notify_team_access_changed,
    team_group_name,
)
from apps.teams.models import Membership
from apps.teams.services.teams import team_create
from config.asgi import application

# Outside `make test-fast`: transactional websocket round trips.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ORIGIN = (b"origin", b"http://127.0.0.1")


class AuditFeedConsumer(TeamScopedConsumer):
    """A consumer that needs more than viewers have, to see the 4403 path."""

    permission = "audit:read"


class QuickRecheckConsumer(TeamScopedConsumer):
    """The periodic backstop, fast enough to observe in a test."""

    permission = "team:read"
    recheck_seconds = 0.2


async def closed_with(socket: WebsocketCommunicator, seconds: float) -> tuple[int, float]:
    started = time.monotonic()
    output = await socket.receive_output(timeout=seconds)
    assert output["type"] == "websocket.close", output
    took = time.monotonic() - started
    # What a real server does after a server-side close; lets the consumer finish cleanly.
    await socket.send_input({"type": "websocket.disconnect", "code": output["code"]})
    await socket.wait(timeout=5)
    return output["code"], took


@database_sync_to_async
def personas() -> dict[str, Any]:
    olivia = user_create(email="olivia@acme.test", password="correct-horse-battery-9")
    vera = user_create(email="vera@acme.test", password="correct-horse-battery-9")
    oscar = user_create(email="oscar@globex.test", password="correct-horse-battery-9")
    acme = team_create(principal=Principal.for_user(olivia), name="Acme", slug="acme")
    globex = team_create(principal=Principal.for_user(oscar), name="Globex", slug="globex")
    Membership.objects.create(team=acme, user=vera, role="viewer")
    # Creating the teams queued "team created" events for the sender thread: deliver them now,
    # or a slow sender hands them to the sockets a test opens next.
    assert flush_pending(10.0)
    return {"olivia": olivia, "vera": vera, "oscar": oscar, "acme": acme, "globex": globex}


@database_sync_to_async
def session_cookie(user: Any) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def connect(
    path_: str, user: Any | None, app: Any = application
) -> tuple[WebsocketCommunicator, bool, int | None]:
    headers = [ORIGIN]
    if user is not None:
        headers.append(await session_cookie(user))
    communicator = WebsocketCommunicator(app, path_, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def refusal(
    path_: str, user: Any | None, app: Any = application
) -> tuple[WebsocketCommunicator, int]:
    """Connect expecting a refusal: the handshake is accepted, then closed with the code."""
    communicator, connected, _ = await connect(path_, user, app)
    assert connected, "a refusal must complete the handshake so the browser sees its code"
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return communicator, output["code"]


async def test_member_receives_events_broadcast_on_commit() -> None:
    people = await personas()
    socket, connected, _ = await connect("/ws/teams/acme/events/", people["vera"])
    assert connected

    @database_sync_to_async
    def write_and_broadcast() -> None:
        with transaction.atomic():
            broadcast_team_event(people["acme"].id, "team.member.added", {"email": "x@acme.test"})

    await write_and_broadcast()
    event = await socket.receive_json_from(timeout=5)
    assert event == {"kind": "team.member.added", "payload": {"email": "x@acme.test"}}
    await socket.disconnect()


async def test_rolled_back_write_broadcasts_nothing() -> None:
    people = await personas()
    socket, connected, _ = await connect("/ws/teams/acme/events/", people["olivia"])
    assert connected

    def service_that_fails() -> None:
        with transaction.atomic():
            broadcast_team_event(people["acme"].id, "team.team.updated", {"name": "Nope"})
            raise RuntimeError("the service failed after scheduling the event")

    @database_sync_to_async
    def failed_write() -> None:
        with pytest.raises(RuntimeError, match="failed after scheduling"):
            service_that_fails()

    await failed_write()
    assert await socket.receive_nothing(timeout=0.5)
    await socket.disconnect()


async def test_events_stay_inside_their_team() -> None:
    people = await personas()
    acme_socket, connected, _ = await connect("/ws/teams/acme/events/", people["olivia"])
    assert connected
    globex_socket, connected, _ = await connect("/ws/teams/globex/events/", people["oscar"])
    assert connected

    @database_sync_to_async
    def broadcast() -> None:
        broadcast_team_event(people["globex"].id, "team.team.updated", {"name": "Globex 2"})

    await broadcast()
    assert (await globex_socket.receive_json_from(timeout=5))["kind"] == "team.team.updated"
    assert await acme_socket.receive_nothing(timeout=0.5)
    await acme_socket.disconnect()
    await globex_socket.disconnect()


async def test_anonymous_is_refused_with_4403() -> None:
    await personas()
    _, code = await refusal("/ws/teams/acme/events/", None)
    assert code == 4403


@pytest.mark.parametrize("slug", ["acme", "no-such-team"])
async def test_outsider_and_missing_team_are_both_4404(slug: str) -> None:
    people = await personas()
    _, code = await refusal(f"/ws/teams/{slug}/events/", people["oscar"])
    assert code == 4404


async def test_member_without_the_permission_gets_4403() -> None:
    people = await personas()
    from channels.auth import AuthMiddlewareStack

    app = AuthMiddlewareStack(
        URLRouter([path("ws/teams/<slug:team_slug>/audit/", AuditFeedConsumer.as_asgi())])
    )
    _, code = await refusal("/ws/teams/acme/audit/", people["vera"], app)
    assert code == 4403
    socket, connected, _ = await connect("/ws/teams/acme/audit/", people["olivia"], app)
    assert connected
    await socket.disconnect()


async def test_foreign_origin_is_refused() -> None:
    people = await personas()
    communicator = WebsocketCommunicator(
        application,
        "/ws/teams/acme/events/",
        headers=[(b"origin", b"https://evil.example"), await session_cookie(people["olivia"])],
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


async def test_group_membership_ends_at_disconnect() -> None:
    people = await personas()
    socket, connected, _ = await connect("/ws/teams/acme/events/", people["olivia"])
    assert connected
    await socket.disconnect()
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add(team_group_name(people["acme"].id), listener)
    await layer.group_send(
        team_group_name(people["acme"].id), {"type": "team.event", "kind": "k", "payload": {}}
    )
    assert (await asyncio.wait_for(layer.receive(listener), 5))["kind"] == "k"
    await layer.group_discard(team_group_name(people["acme"].id), listener)


def test_subclass_must_name_a_known_permission() -> None:
    with pytest.raises(TypeError, match="PERMISSIONS"):

        class NoPermission(TeamScopedConsumer):
            pass

    with pytest.raises(TypeError, match="PERMISSIONS"):

        class Typo(TeamScopedConsumer):
            permission = "team:reed"


def test_subclass_cannot_override_connect() -> None:
    with pytest.raises(TypeError, match="team_connected"):

        class Sneaky(TeamScopedConsumer):
            permission = "team:read"

            async def connect(self) -> None:
                await self.accept()


@pytest.mark.parametrize(
    ("team_id", "kind", "payload", "error"),
    [
        (0, "k", {}, ValueError),
        ("1", "k", {}, ValueError),
        (1, "", {}, ValueError),
        (1, "k", ["not", "a", "mapping"], TypeError),
        (1, "k", {"bad": object()}, TypeError),
    ],
)
def test_broadcast_rejects_bad_input_at_once(
    team_id: Any, kind: Any, payload: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        broadcast_team_event(team_id, kind, payload)


async def test_removed_member_is_disconnected_when_access_changes() -> None:
    people = await personas()
    vera, connected, _ = await connect("/ws/teams/acme/events/", people["vera"])
    assert connected
    olivia, connected, _ = await connect("/ws/teams/acme/events/", people["olivia"])
    assert connected

    @database_sync_to_async
    def remove_vera() -> None:
        with transaction.atomic():
            Membership.objects.filter(team=people["acme"], user=people["vera"]).delete()
            notify_team_access_changed(people["acme"].id)

    await remove_vera()
    code, took = await closed_with(vera, 5)
    assert code == 4403
    print(f"membership removed -> socket closed in {took * 1000:.0f} ms")
    assert await olivia.receive_nothing(timeout=0.3), "the owner keeps her socket"
    await olivia.disconnect()


async def test_deactivated_user_is_disconnected() -> None:
    people = await personas()
    vera, connected, _ = await connect("/ws/teams/acme/events/", people["vera"])
    assert connected

    @database_sync_to_async
    def deactivate() -> None:
        with transaction.atomic():
            people["vera"].is_active = False
            people["vera"].save(update_fields=["is_active"])
            notify_team_access_changed(people["acme"].id)

    await deactivate()
    code, _ = await closed_with(vera, 5)
    assert code == 4403


async def test_lost_access_message_is_caught_by_the_periodic_recheck() -> None:
    people = await personas()
    from channels.auth import AuthMiddlewareStack

    app = AuthMiddlewareStack(
        URLRouter([path("ws/teams/<slug:team_slug>/quick/", QuickRecheckConsumer.as_asgi())])
    )
    vera, connected, _ = await connect("/ws/teams/acme/quick/", people["vera"], app)
    assert connected

    @database_sync_to_async
    def remove_vera_silently() -> None:
        Membership.objects.filter(team=people["acme"], user=people["vera"]).delete()

    await remove_vera_silently()
    code, took = await closed_with(vera, 5)
    assert code == 4403
    assert took < 2


def test_subclass_cannot_override_websocket_disconnect() -> None:
    with pytest.raises(TypeError, match="websocket_disconnect"):

        class Sneaky(TeamScopedConsumer):
            permission = "team:read"

            async def websocket_disconnect(self, message: dict[str, Any]) -> None:
                pass
