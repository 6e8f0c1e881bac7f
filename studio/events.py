"""The run-event protocol: publish, replay, follow.

An event is ``{"seq", "type", "run", "node", "data", "ts"}``. ``publish`` gives it the run's next
sequence number and appends it to the run's log: a Redis stream whose entry ids are the sequence
numbers, written by one Lua script so that numbering and order agree. The log is both the
durable record and the live feed: readers (the WebSocket consumer, SSE, the OpenAI-compatible
stream) ``follow`` it with ``XREAD BLOCK`` from their last sequence number, so replay and live
are one read, and a reconnect loses nothing and repeats nothing.

(Sending each event to a Channels group as well, and following the group, measured 2.5× slower
in ``bench/spine.py``: every event crossed channels-redis's per-process receive lock.)
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

from studio import redis_client

RUN_STARTED = "run.started"
NODE_STARTED = "node.started"
TOKEN = "token"
NODE_FINISHED = "node.finished"
NODE_SKIPPED = "node.skipped"  # on a branch that was not taken
NODE_RETRY = "node.retry"  # a failed attempt; the node starts again (its streamed text resets)
RUN_WAITING = "run.waiting"  # a human-input node waits for a person's answer
RUN_FINISHED = "run.finished"
RUN_FAILED = "run.failed"
TERMINAL_TYPES = (RUN_FINISHED, RUN_FAILED)
FOLLOW_IDLE_S = 5.0  # a follower hears None after this long without an event

_APPEND = """
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], seq .. '-0', 'type', ARGV[1], 'node', ARGV[2], 'data', ARGV[3],
           'ts', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return seq
"""


def _keys(run_id: Any) -> list[str]:
    return [f"studio:run:{run_id}:seq", f"studio:run:{run_id}:log"]


def _event(run_id: Any, seq: int, type_: str, node: str, data: str, ts: str) -> dict:
    return {
        "seq": seq,
        "type": type_,
        "run": str(run_id),
        "node": node or None,
        "data": json.loads(data),
        "ts": float(ts),
    }


def _decode(run_id: Any, entry_id: bytes, fields: dict) -> dict:
    return _event(
        run_id,
        int(entry_id.split(b"-")[0]),
        fields[b"type"].decode(),
        fields[b"node"].decode(),
        fields[b"data"].decode(),
        fields[b"ts"].decode(),
    )


def _aclient():
    return redis_client.async_client()


def _client():
    return redis_client.client()


def _args(type_: str, node: str | None, data: dict | None) -> list:
    return [
        type_,
        node or "",
        json.dumps(data or {}),
        repr(time.time()),
        settings.STUDIO_EVENT_LOG_TTL_S,
    ]


async def publish(
    run_id: Any, type_: str, node: str | None = None, data: dict | None = None
) -> dict:
    """Append an event to the run's log. Returns the event."""
    args = _args(type_, node, data)
    seq = await _aclient().eval(_APPEND, 2, *_keys(run_id), *args)
    return _event(run_id, int(seq), *args[:4])


def publish_sync(
    run_id: Any, type_: str, node: str | None = None, data: dict | None = None
) -> dict:
    """``publish`` for synchronous code (the executor); call it after the commit it reports."""
    args = _args(type_, node, data)
    seq = _client().eval(_APPEND, 2, *_keys(run_id), *args)
    return _event(run_id, int(seq), *args[:4])


def publish_many_sync(run_id: Any, items: list[tuple[str, str | None, dict | None]]) -> None:
    """``publish_sync`` of many events in one round trip, in order."""
    pipe = _client().pipeline(transaction=False)
    for type_, node, data in items:
        pipe.eval(_APPEND, 2, *_keys(run_id), *_args(type_, node, data))
    pipe.execute()


async def replay(run_id: Any, after: int = 0) -> list[dict]:
    """The logged events with ``seq > after``, in order."""
    entries = await _aclient().xrange(_keys(run_id)[1], min=f"({after}-0", max="+")
    return [_decode(run_id, entry_id, fields) for entry_id, fields in entries]


async def follow(
    run_id: Any, after: int = 0, idle_s: float = FOLLOW_IDLE_S
) -> AsyncIterator[dict | None]:
    """Yield the run's events after ``after`` until a terminal one: the log, then as it grows.

    Yields None after ``idle_s`` without an event, so a caller can send a keep-alive or check
    that the run is not stale.
    """
    if not 0 < idle_s <= FOLLOW_IDLE_S:
        raise ValueError(f"idle_s must be within (0, {FOLLOW_IDLE_S}]")
    key = _keys(run_id)[1]
    last = after
    while True:
        batch = await _aclient().xread({key: f"{last}-0"}, block=int(idle_s * 1000), count=1000)
        if not batch:
            yield None
            continue
        for entry_id, fields in batch[0][1]:
            event = _decode(run_id, entry_id, fields)
            last = event["seq"]
            yield event
            if event["type"] in TERMINAL_TYPES:
                return
