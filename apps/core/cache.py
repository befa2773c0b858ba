"""The production cache backend: Django's ``RedisCache`` with one Redis client per process.

Django keeps a cache object per thread *and* per asyncio context (``CacheHandler`` is not
thread-critical, so its ``Local`` follows contexts). Every ``sync_to_async`` call runs in a new
context, and with the stock backend each of those builds a new client, a new connection pool and
a new TCP connection to Redis, at a few milliseconds of CPU each (redis-py reads its package
metadata for every new connection). Measured on the device link (RELIABILITY family 25): 18 %
of the ASGI processes' CPU while 1000 devices connected at once.

Here every cache object of the same configuration shares one client and so one thread-safe
connection pool; redis-py's pool notices a fork and starts over in the child.

``memoize_redis_version`` removes the other half of that cost for the connections that must be
made (the channel layer's pool filling up under a burst): redis-py 8 looks its own version up in
the installed packages' metadata, a directory scan, for every new connection.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import redis.utils
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

_clients: dict[tuple[str, ...], RedisCacheClient] = {}
_lock = threading.Lock()


class SharedRedisCache(RedisCache):
    @cached_property
    def _cache(self) -> Any:
        # django-stubs do not know the backend's private attributes
        servers, options = self._servers, self._options  # type: ignore[attr-defined]  # private in the stubs
        key = (*servers, repr(sorted(options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(servers, **options)  # type: ignore[attr-defined]  # private in the stubs
        return client


def memoize_redis_version() -> None:
    """Look redis-py's version up once per process (``CoreConfig.ready``)."""
    lookup = redis.utils.get_lib_version
    if not isinstance(lookup, functools._lru_cache_wrapper):
        redis.utils.get_lib_version = functools.cache(lookup)
