"""The production Channels layer: channels_redis with a Redis client fit for idle and busy sockets.

Three defaults of the pinned stack break a plant's websockets, so this layer replaces them:

* **Read timeout.** redis-py times out a read after 5 s (``socket_timeout``) and channels_redis
  blocks 5 s in ``BZPOPMIN`` waiting for messages: on a quiet team the read timed out before the
  server's empty answer, the receive loop raised ``TimeoutError`` and every socket died with 1006
  (redis/redis-py#4091, django/channels_redis#422). Reads here wait ``blocking timeout + 10 s``;
  dead peers are still found by TCP keepalive and a PING before a command after an idle spell.
* **Pool cap.** The default pool raises ``MaxConnectionsError`` at 100 connections in use, which
  thousands of sockets closing together reach at once: their ``group_discard`` failed and left
  stale members for a day. Here the pool is bigger and *blocking*: a burst waits for a free
  connection instead of failing.
* **Lost discards.** A ``group_discard`` that still fails (Redis restarting) is retried with
  backoff, so group membership stays correct.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class RedisChannelLayer(BaseRedisChannelLayer):  # type: ignore[misc]  # channels_redis is untyped
    """``channels_redis`` with a blocking, sized pool, long reads and retried group discards.

    Extra CONFIG keys: ``pool_size`` (connections per process and event loop), ``pool_timeout``
    (seconds a command waits for a free connection), ``discard_attempts``.
    """

    def __init__(
        self,
        *,
        pool_size: int = 200,
        pool_timeout: float = 20,
        discard_attempts: int = 5,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if pool_size < 2:
            raise ValueError("pool_size must be at least 2 (one connection blocks on receive).")
        self.pool_size = pool_size
        self.pool_timeout = pool_timeout
        self.discard_attempts = discard_attempts

    def create_pool(self, index: int) -> Any:
        host = dict(self.hosts[index])
        if "address" not in host:
            # Sentinel setups keep channels_redis' own pool.
            return super().create_pool(index)
        address = host.pop("address")
        return BlockingConnectionPool.from_url(
            address,
            max_connections=self.pool_size,
            timeout=self.pool_timeout,
            socket_timeout=self.brpop_timeout + 10,
            socket_connect_timeout=5,
            socket_keepalive=True,
            health_check_interval=30,
            **host,
        )

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``, retrying while Redis is briefly unavailable."""
        for attempt in range(1, self.discard_attempts + 1):
            try:
                await super().group_discard(group, channel)
                return
            except RedisError:
                if attempt == self.discard_attempts:
                    # Membership then expires after group_expiry; say so instead of hiding it.
                    logger.exception("channels: group_discard %s failed %s times", group, attempt)
                    raise
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
