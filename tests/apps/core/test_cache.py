"""The production cache backend shares one Redis client per process (apps/core/cache.py)."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.cache import caches
from django.test import override_settings

pytestmark = pytest.mark.skipif(not os.environ.get("MANIFOLD_REDIS_URL"), reason="needs Redis")


def _settings() -> dict[str, dict[str, object]]:
    return {
        "default": {
            "BACKEND": "apps.core.cache.SharedRedisCache",
            "LOCATION": os.environ["MANIFOLD_REDIS_URL"],
            "KEY_PREFIX": f"shared-cache-test-{uuid.uuid4().hex}",
        }
    }


def test_contexts_share_one_client_and_a_few_connections() -> None:
    with override_settings(CACHES=_settings()):

        def read() -> tuple[int, object]:
            cache = caches["default"]
            cache.set("k", "v", 30)
            client = cache._cache  # type: ignore[attr-defined]  # the backend's client
            return id(client), cache.get("k")

        async def many() -> list[tuple[int, object]]:
            # Like the consumers: each call from a task of its own, so each runs in a new
            # context, where the stock backend made a new client, pool and TCP connection.
            async def one() -> tuple[int, object]:
                return await sync_to_async(read, thread_sensitive=False)()

            return [await asyncio.create_task(one()) for _ in range(40)]

        answers = async_to_sync(many)()
        assert {value for _, value in answers} == {"v"}
        assert len({client for client, _ in answers}) == 1
        pool = caches["default"]._cache._get_connection_pool(write=False)  # type: ignore[attr-defined]  # the backend client
        assert pool._created_connections <= 4
