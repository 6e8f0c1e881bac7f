"""The run-event protocol: publish, replay, follow.

An event is ``{"seq", "type", "run", "node", "data", "ts"}``. ``publish`` gives it the run's next
sequence number and appends it to the run's durable log (a Redis stream whose entry ids are the
sequence numbers, written by one Lua script so numbering and order agree), then sends it to the
Channels group ``run.<id>``. Readers (the WebSocket consumer, SSE, the OpenAI-compatible stream)
all ``follow``: subscribe, replay the log after their last sequence number, then take live
events, filling any gap from the log. A reconnect loses nothing and repeats nothing.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from channels.layers import get_channel_layer
from django.conf import settings

RUN_STARTED = "run.started"
NODE_STARTED = "node.started"
TOKEN = "token"
NODE_FINISHED = "node.finished"
RUN_FINISHED = "run.finished"
RUN_FAILED = "run.failed"
TERMINAL_TYPES = (RUN_FINISHED, RUN_FAILED)

_APPEND = """
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], seq .. '-0', 'type', ARGV[1], 'node', ARGV[2], 'data', ARGV[3],
           'ts', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return seq
"""


def group_name(run_id: Any) -> str:
    return f"run.{run_id}"


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


# One client per event loop: redis.asyncio connections belong to the loop that made them.
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Synchronous callers publish through one long-lived loop, so their connections are reused
# (``async_to_sync`` would make a new loop, and new connections, for every event).
_publisher_loop: asyncio.AbstractEventLoop | None = None
_publisher_lock = threading.Lock()


def _aclient() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        _async_clients[loop] = client
    return client


def _publisher() -> asyncio.AbstractEventLoop:
    global _publisher_loop
    with _publisher_lock:
        if _publisher_loop is None:
            _publisher_loop = asyncio.new_event_loop()
            threading.Thread(
                target=_publisher_loop.run_forever, name="event-publisher", daemon=True
            ).start()
        return _publisher_loop


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
    """Append an event to the run's log and send it to the run's group. Returns the event."""
    args = _args(type_, node, data)
    seq = await _aclient().eval(_APPEND, 2, *_keys(run_id), *args)
    event = _event(run_id, int(seq), *args[:4])
    await get_channel_layer().group_send(group_name(run_id), {"type": "run.event", "event": event})
    return event


def publish_sync(
    run_id: Any, type_: str, node: str | None = None, data: dict | None = None
) -> dict:
    """``publish`` for synchronous code (the executor); call it after the commit it reports."""
    return asyncio.run_coroutine_threadsafe(
        publish(run_id, type_, node, data), _publisher()
    ).result()


async def replay(run_id: Any, after: int = 0, upto: int | None = None) -> list[dict]:
    """The logged events with ``after < seq`` (and ``seq < upto`` when given), in order."""
    entries = await _aclient().xrange(
        _keys(run_id)[1], min=f"({after}-0", max=f"({upto}-0" if upto else "+"
    )
    return [
        _event(
            run_id,
            int(entry_id.split(b"-")[0]),
            fields[b"type"].decode(),
            fields[b"node"].decode(),
            fields[b"data"].decode(),
            fields[b"ts"].decode(),
        )
        for entry_id, fields in entries
    ]


async def follow(run_id: Any, after: int = 0, idle_s: float = 5.0) -> AsyncIterator[dict | None]:
    """Yield the run's events after ``after`` until a terminal one, replay first, then live.

    Yields None after ``idle_s`` without an event, so a caller can send a keep-alive or check
    that the run is not stale. Subscribes before replaying, so nothing falls between the two.
    """
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group_name(run_id), channel)
    last = after
    try:
        for event in await replay(run_id, after):
            yield event
            last = event["seq"]
            if event["type"] in TERMINAL_TYPES:
                return
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout=idle_s)
            except TimeoutError:
                # A live message may have been dropped; the log is the truth.
                missed = await replay(run_id, last)
                for event in missed:
                    yield event
                    last = event["seq"]
                    if event["type"] in TERMINAL_TYPES:
                        return
                if not missed:
                    yield None
                continue
            event = message["event"]
            if event["seq"] <= last:
                continue  # already replayed
            pending = [event]
            if event["seq"] > last + 1:  # a gap: fill it from the log
                pending = await replay(run_id, last, event["seq"]) + pending
            for item in pending:
                yield item
                last = item["seq"]
                if item["type"] in TERMINAL_TYPES:
                    return
    finally:
        await layer.group_discard(group_name(run_id), channel)
