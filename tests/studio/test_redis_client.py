"""Waiting for a worker's reply in Redis: a reply that takes longer than the client's socket
timeout (a model loading) still arrives; none within the wait is None, not an error."""

from __future__ import annotations

import secrets
import threading
import time

from studio import redis_client


def test_a_reply_slower_than_the_socket_timeout_arrives():
    key = f"test:reply:{secrets.token_hex(8)}"
    # Later than redis-py's default socket timeout (5 s), which once cut such waits off.
    timer = threading.Timer(6.0, lambda: redis_client.client().rpush(key, b"done"))
    timer.start()
    try:
        assert redis_client.pop_reply(key, timeout=20) == b"done"
    finally:
        timer.cancel()


def test_no_reply_within_the_wait_is_none():
    started = time.monotonic()
    assert redis_client.pop_reply(f"test:reply:{secrets.token_hex(8)}", timeout=1.5) is None
    assert time.monotonic() - started < 10
