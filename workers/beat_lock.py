"""The fleet-wide beat lock: a Redis key that only the one running beat scheduler holds."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

logger = logging.getLogger(__name__)

KEY = "studio:beat:lock"

# Compare-and-act on the holder's token, so that a beat whose lock expired (a long pause) can
# neither extend nor delete the lock that another beat has taken since.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"  # noqa: E501


def _token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class BeatLock:
    """``SET NX PX``: the lock lapses ``ttl_s`` after its holder stops renewing it (killed, cut
    off from Redis), so a standby beat takes over without anyone cleaning up."""

    client: redis.Redis
    ttl_s: float = 30.0
    key: str = KEY
    token: str = field(default_factory=_token)

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=int(self.ttl_s * 1000)))

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if value else None

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, self.key, self.token, int(self.ttl_s * 1000)))

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, self.key, self.token)

    def wait(self) -> None:
        """Block until this process holds the lock (polled every third of the TTL)."""
        while not self.acquire():
            time.sleep(self.ttl_s / 3)


def keep(lock: BeatLock, *, on_lost: Callable[[str], None]) -> threading.Event:
    """Renew ``lock`` every third of its TTL in a daemon thread; returns the event that stops it.

    ``on_lost(reason)`` runs once when the lock is gone (another holder, or no successful renewal
    for two thirds of the TTL: by then it may lapse) and must stop the scheduler: two beats would
    send every periodic task twice.
    """
    stop = threading.Event()
    interval = lock.ttl_s / 3

    def renew_forever() -> None:
        renewed_at = time.monotonic()
        while not stop.wait(interval):
            try:
                if lock.renew():
                    renewed_at = time.monotonic()
                    continue
                reason = f"the beat lock is now held by {lock.holder() or 'nobody'}"
            except redis.RedisError as exc:
                if time.monotonic() - renewed_at < 2 * interval:
                    logger.warning("could not renew the beat lock (%s); retrying", exc)
                    continue
                reason = f"the beat lock could not be renewed for {2 * interval:.0f} s ({exc})"
            on_lost(reason)
            return

    threading.Thread(target=renew_forever, name="beat-lock", daemon=True).start()
    return stop
