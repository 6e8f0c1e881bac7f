"""The process's Redis clients: one synchronous client, one asynchronous client per event loop,
and dedicated asynchronous clients for long blocking reads (``studio.event_hub``).

All reach ``STUDIO_EVENTS_URL`` (``REDIS_URL`` unless set): run-event logs, job hand-offs between
web and worker processes, caches, quotas and metrics; Celery and Channels have URLs of their own.

redis.asyncio connections belong to the loop that made them, hence one client per loop.
"""

from __future__ import annotations

import asyncio
import time
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

# Longer than any ``XREAD BLOCK`` of the event followers: redis-py's default (5 s) would cut a
# reader off while a model loads.
SOCKET_TIMEOUT_S = 35.0
MAX_CONNECTIONS = 100_000

_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_sync_client: redis.Redis | None = None


def async_client() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # Many callers at once each hold a connection (a thousand sockets replaying their runs'
        # logs as they connect): redis-py's default pool (100) would fail the 101st.
        client = aioredis.Redis.from_url(
            settings.STUDIO_EVENTS_URL,
            socket_timeout=SOCKET_TIMEOUT_S,
            max_connections=MAX_CONNECTIONS,
        )
        _async_clients[loop] = client
    return client


def dedicated_async_client(name: str) -> aioredis.Redis:
    """A client of its own, for the running loop, named ``name`` in ``CLIENT LIST``: for a task
    whose blocked read must not wait behind, or hold up, the shared pool. Close it (``aclose``)."""
    return aioredis.Redis.from_url(
        settings.STUDIO_EVENTS_URL,
        socket_timeout=SOCKET_TIMEOUT_S,
        client_name=name,
        max_connections=2,
    )


def client() -> redis.Redis:
    global _sync_client
    if _sync_client is None:  # redis-py's pool is thread-safe: one client per process
        _sync_client = redis.Redis.from_url(settings.STUDIO_EVENTS_URL)
    return _sync_client


# A blocking pop waits in slices shorter than the socket timeout, which would cut it off.
POP_SLICE_S = 4


def pop_reply(key: str, timeout: float) -> bytes | None:
    """The value pushed on list ``key`` within ``timeout`` seconds (BLPOP), or None: how a web
    process waits for a worker's reply, however long the worker takes (a model loading)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        found = client().blpop([key], timeout=max(1, min(left, POP_SLICE_S)))
        if found is not None:
            return found[1]
    return None
