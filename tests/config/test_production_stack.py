"""The production stack under real sockets: uvicorn, the Redis channel layer, real clients.

Runs in CI's PostgreSQL + Redis stage (skipped on the embedded defaults, which have no Redis).
Figures are printed, never asserted as timings (the machine is shared).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connections, transaction
from django.test import Client, override_settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from apps.accounts.principal import Principal
from apps.accounts.services import token_create
from apps.core.realtime import (
    broadcast_team_event,
    team_access_group_name,
    team_group_name,
)
from apps.core.redis_layer import RedisChannelLayer
from config.asgi import application
from tests.asgi_server import serve_asgi, serve_processes
from tests.conftest import Acme

pytestmark = [
    pytest.mark.skipif(
        not settings.REDIS_URL, reason="needs Redis (CI's PostgreSQL + Redis stage)"
    ),
    pytest.mark.django_db(transaction=True),
]
IDLE_SECONDS = 120
SOCKETS = 2000


@pytest.fixture
def server(transactional_db: Any) -> Iterator[str]:
    with serve_asgi(application) as base:
        yield base


def session_cookie(acme: Acme) -> str:
    client = Client()
    client.force_login(acme.olivia)
    return f"sessionid={client.cookies['sessionid'].value}"


async def open_socket(base: str, slug: str, cookie: str | None) -> ClientConnection:
    headers = {"Origin": base}
    if cookie:
        headers["Cookie"] = cookie
    url = f"{base.replace('http://', 'ws://')}/ws/teams/{slug}/events/"
    return await connect(url, additional_headers=headers, open_timeout=60, ping_interval=None)


def announce(acme: Acme, kind: str) -> float:
    """What a service does, in its own thread as a request would; returns the commit time."""
    committed: list[float] = []

    def work() -> None:
        try:
            with transaction.atomic():
                broadcast_team_event(acme.team.pk, kind, {"at": "now"})
                transaction.on_commit(lambda: committed.append(time.monotonic()))
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    return committed[0]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


@pytest.mark.slow
def test_idle_sockets_live_for_two_minutes_then_receive_an_event(
    acme_world: Acme, server: str
) -> None:
    cookie = session_cookie(acme_world)

    async def scenario() -> list[dict[str, Any]]:
        sockets = [await open_socket(server, "acme", cookie) for _ in range(6)]
        await asyncio.sleep(IDLE_SECONDS)
        await asyncio.to_thread(announce, acme_world, "team.application.created")
        events = [json.loads(await asyncio.wait_for(s.recv(), 15)) for s in sockets]
        for socket in sockets:
            await socket.close()
        return events

    events = asyncio.run(scenario())
    assert [event["kind"] for event in events] == ["team.application.created"] * 6
    print(f"6/6 sockets idle {IDLE_SECONDS} s on Redis, then received the event")


@pytest.mark.parametrize(
    ("slug", "persona", "code"), [("acme", None, 4403), ("globex", "olivia", 4404)]
)
def test_a_real_client_sees_the_refusal_code(
    acme_world: Acme, server: str, slug: str, persona: str | None, code: int
) -> None:
    cookie = session_cookie(acme_world) if persona else None

    async def refused() -> int | None:
        try:
            socket = await open_socket(server, slug, cookie)
        except InvalidStatus as error:
            pytest.fail(f"handshake refused with HTTP {error.response.status_code}, not a code")
        await socket.wait_closed()
        return socket.close_code

    assert asyncio.run(refused()) == code


def post_application(base: str, token: str, number: int) -> float:
    """Create an application through a web process's API, as the proxy forwards it."""
    request = urllib.request.Request(  # noqa: S310  # a loopback test server
        f"{base}/api/v1/teams/acme/applications/",
        json.dumps({"name": f"Line {number}", "slug": f"line-x{number}"}).encode(),
        {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "X-Forwarded-Proto": "https",
        },
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310  # loopback
        assert response.status == 201
    return time.monotonic() - started


@pytest.fixture
def production_processes(transactional_db: Any, tmp_path: Path) -> Iterator[tuple[list[str], str]]:
    """Three web processes on production settings, sharing the test database and Redis."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("production settings need PostgreSQL")
    secret = secrets.token_urlsafe(64)
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.prod",
        "MANIFOLD_SECRET_KEY": secret,
        "MANIFOLD_DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
            f"{database['NAME']}"
        ),
        "MANIFOLD_REDIS_URL": settings.REDIS_URL,
        "MANIFOLD_ALLOWED_HOSTS": "127.0.0.1",
        "MANIFOLD_KEY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "MANIFOLD_VAR_DIR": str(tmp_path),
        "MANIFOLD_STATIC_ROOT": str(tmp_path / "static"),
    }
    (tmp_path / "static").mkdir()
    with serve_processes(3, env) as bases:
        yield bases, secret


def production_group_sizes(acme: Acme) -> tuple[int, int]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return tuple(  # type: ignore[return-value]  # two ZCARDs, two ints
            client.zcard(f"manifold:group:{name}")
            for name in (team_group_name(acme.team.pk), team_access_group_name(acme.team.pk))
        )
    finally:
        client.close()


@pytest.mark.slow
# Minutes on a loaded 2-core machine: 2000 handshakes each load a session and check access.
@pytest.mark.timeout(900)
def test_two_thousand_sockets_on_two_processes_fan_out_and_close_leaving_no_member(
    acme_world: Acme, production_processes: tuple[list[str], str]
) -> None:
    bases, secret = production_processes
    with override_settings(SECRET_KEY=secret):
        # Sessions and tokens the production processes accept: signed with their key.
        cookie = session_cookie(acme_world)
        token = token_create(principal=Principal.for_user(acme_world.olivia), name="latency").secret
    connections.close_all()
    # Sockets on the first two processes; POSTs to the third, so its latency shows what the
    # request itself waits for, not how busy a process serving 1000 sockets is.
    quiet_post = statistics.median(post_application(bases[2], token, n) for n in range(5))

    async def scenario() -> dict[str, float]:
        connected: list[ClientConnection] = []
        connect_times: list[float] = []

        async def one(number: int) -> None:
            started = time.monotonic()
            connected.append(await open_socket(bases[number % 2], "acme", cookie))
            connect_times.append(time.monotonic() - started)

        started = time.monotonic()
        for batch in range(0, SOCKETS, 100):
            await asyncio.gather(*(one(n) for n in range(batch, min(batch + 100, SOCKETS))))
        print(f"{SOCKETS} sockets connected in {time.monotonic() - started:.0f} s")
        assert await asyncio.to_thread(production_group_sizes, acme_world) == (SOCKETS, SOCKETS)

        async def received_at(socket: ClientConnection) -> float:
            await asyncio.wait_for(socket.recv(), 120)
            return time.monotonic()

        posts: list[float] = []
        fan_out: list[float] = []
        for number in range(10, 15):
            waiting = [asyncio.ensure_future(received_at(socket)) for socket in connected]
            started = time.monotonic()
            posts.append(await asyncio.to_thread(post_application, bases[2], token, number))
            fan_out.extend(at - started for at in await asyncio.gather(*waiting))

        await asyncio.gather(*(socket.close() for socket in connected))
        deadline = time.monotonic() + 60
        while await asyncio.to_thread(production_group_sizes, acme_world) != (0, 0):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        return {
            "connect_p99": percentile(connect_times, 0.99),
            "fan_out_p50": percentile(fan_out, 0.5),
            "fan_out_p99": percentile(fan_out, 0.99),
            "post_busy": statistics.median(posts),
        }

    figures = asyncio.run(scenario())
    stale = production_group_sizes(acme_world)
    print(
        f"{SOCKETS} sockets on 2 production processes (+1 for POSTs): connect p99 "
        f"{figures['connect_p99'] * 1000:.0f} ms; POST -> event on every socket p50 "
        f"{figures['fan_out_p50'] * 1000:.0f} ms p99 {figures['fan_out_p99'] * 1000:.0f} ms; "
        f"POST median {quiet_post * 1000:.0f} ms at 0 sockets, "
        f"{figures['post_busy'] * 1000:.0f} ms at {SOCKETS}; stale members after close {stale}"
    )
    assert stale == (0, 0)


async def test_many_discards_at_once_all_land() -> None:
    layer = RedisChannelLayer(hosts=[settings.REDIS_URL], prefix="manifold-test-discard")
    channels = [await layer.new_channel() for _ in range(SOCKETS)]
    for channel in channels:
        await layer.group_add("crowd", channel)
    await asyncio.gather(*(layer.group_discard("crowd", channel) for channel in channels))
    connection = layer.connection(0)
    assert await connection.zcard("manifold-test-discard:group:crowd") == 0
    await layer.flush()
