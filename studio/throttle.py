"""Fixed-window request counters in Redis, shared by every web process."""

from __future__ import annotations

from studio import redis_client

PREFIX = "studio:throttle:"


def throttle_hit(*, key: str, limit: int, window_s: int) -> bool:
    """Count one request against ``key``; whether it is still within ``limit`` for the window
    that began with the key's first request."""
    name = PREFIX + key
    pipe = redis_client.client().pipeline()  # MULTI: both or neither
    pipe.set(name, 0, ex=window_s, nx=True)  # the first request opens the window
    pipe.incr(name)
    _, count = pipe.execute()
    return count <= limit
