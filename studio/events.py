"""The run-event protocol: publish, replay, follow.

An event is ``{"seq", "type", "run", "node", "data", "ts"}``. ``publish`` gives it the run's next
sequence number and appends it to the run's log: a Redis stream whose entry ids are the sequence
numbers, written by one Lua script so that numbering and order agree. The log is both the
durable record and the live feed: readers (the WebSocket consumer, SSE, the OpenAI-compatible
stream) ``follow`` it from their last sequence number, so replay and live are one read, and a
reconnect loses nothing and repeats nothing.

A process's followers share one reader per event loop (``studio.event_hub``): one ``XREAD
BLOCK`` over every followed run's log, whose entries go to each run's followers; a follower that
joins late reads what it missed from the log first. ``follow`` yields the decoded dicts;
``follow_batches`` yields the ``Entry``s that were ready together, each with a ``frame``: its
JSON text built around the stored ``data`` text, so a WebSocket sends an event without decoding
and encoding it again, and can send a batch as one message (the chat page's ``?batch=1``).

(Sending each event to a Channels group as well, and following the group, measured 2.5× slower
in ``bench/spine.py``: every event crossed channels-redis's per-process receive lock. One
``XREAD BLOCK`` per follower, each on its own connection and each event its own message, held
about 5k events/s in one daphne on 2 cores; the shared reader with batched messages about 20-25k:
``bench/streaming.py``.)

A node's tokens go through a ``TokenBuffer``: one ``token`` entry carries every token made within
a few milliseconds (``{"text": <their text joined>}``), so the log, each reader and each socket pay
per entry, not per token (``bench/tokens.py``). The first token still goes out at once; each
later one waits at most ``TOKEN_WINDOW_S`` (a busy loop gathers more).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

from studio import event_hub, redis_client

RUN_STARTED = "run.started"
NODE_STARTED = "node.started"
TOKEN = "token"
NODE_FINISHED = "node.finished"
NODE_SKIPPED = "node.skipped"  # on a branch that was not taken
NODE_RETRY = "node.retry"  # a failed attempt; the node starts again (its streamed text resets)
NODE_LOADING = "node.loading"  # the node's model is being loaded on its worker (a first call)
RUN_WAITING = "run.waiting"  # a human-input node waits for a person's answer
RUN_FINISHED = "run.finished"
RUN_FAILED = "run.failed"
# An agent's steps (agents/loop.py), in the run's log beside its tokens:
AGENT_STEP = "agent.step"  # step n starts: {"step"}
AGENT_THOUGHT = "agent.thought"  # what the model said before calling tools: {"step", "text"}
TOOL_CALL = "tool.call"  # {"step", "key", "tool", "arguments"}
TOOL_RESULT = "tool.result"  # {"step", "key", "tool", "content" (shortened), "details"}
# The run waits for a person to approve a tool call: {"step", "key", "tool", "arguments"}.
APPROVAL_NEEDED = "approval.needed"
AGENT_FINISHED = "agent.finished"  # {"outcome": done|limited|failed, "reason", "steps", "tokens"}
TERMINAL_TYPES = (RUN_FINISHED, RUN_FAILED)
_TERMINAL_STORED = frozenset(type_.encode() for type_ in TERMINAL_TYPES)
FOLLOW_IDLE_S = 5.0  # a follower hears None after this long without an event
# A token entry holds the tokens made within this long of its first one…
TOKEN_WINDOW_S = 0.005
# …or this many: a full batch goes out at once, and its producer waits for it (back-pressure).
TOKEN_BATCH_MAX = 256

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


class Entry:
    """One logged event as read: its dict (``event``) and its JSON text (``frame``), each made
    when first asked for. ``frame`` puts the stored ``data`` text in as it is: the same JSON as
    ``json.dumps(event)``, without decoding and encoding ``data`` again."""

    __slots__ = ("run", "seq", "fields")

    def __init__(self, run_id: Any, seq: int, fields: dict) -> None:
        self.run = run_id
        self.seq = seq
        self.fields = fields  # as stored: bytes keys and values

    @property
    def terminal(self) -> bool:
        return self.fields[b"type"] in _TERMINAL_STORED

    @property
    def event(self) -> dict:
        fields = self.fields
        return _event(
            self.run,
            self.seq,
            fields[b"type"].decode(),
            fields[b"node"].decode(),
            fields[b"data"].decode(),
            fields[b"ts"].decode(),
        )

    @property
    def frame(self) -> str:
        fields = self.fields
        node = fields[b"node"].decode()
        return (
            f'{{"seq": {self.seq}, "type": {json.dumps(fields[b"type"].decode())}, '
            f'"run": {json.dumps(str(self.run))}, "node": {json.dumps(node or None)}, '
            f'"data": {fields[b"data"].decode()}, "ts": {float(fields[b"ts"])!r}}}'
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
    return [entry.event for entry in await replay_entries(run_id, after)]


async def replay_entries(run_id: Any, after: int = 0) -> list[Entry]:
    """``replay``, as entries."""
    entries = await _aclient().xrange(_keys(run_id)[1], min=f"({after}-0", max="+")
    return [Entry(run_id, int(entry_id.split(b"-")[0]), fields) for entry_id, fields in entries]


async def follow(
    run_id: Any, after: int = 0, idle_s: float = FOLLOW_IDLE_S
) -> AsyncIterator[dict | None]:
    """Yield the run's events after ``after`` until a terminal one: the log, then as it grows.

    Yields None after ``idle_s`` without an event, so a caller can send a keep-alive or check
    that the run is not stale.
    """
    async for entry in follow_entries(run_id, after, idle_s):
        yield None if entry is None else entry.event


async def follow_entries(
    run_id: Any, after: int = 0, idle_s: float = FOLLOW_IDLE_S
) -> AsyncIterator[Entry | None]:
    """``follow``, as entries."""
    async for batch in follow_batches(run_id, after, idle_s):
        if batch is None:
            yield None
            continue
        for entry in batch:
            yield entry


async def follow_batches(
    run_id: Any, after: int = 0, idle_s: float = FOLLOW_IDLE_S
) -> AsyncIterator[list[Entry] | None]:
    """``follow``, as lists of the entries that were ready together (a WebSocket may send them
    in one frame), through the event loop's hub (``studio.event_hub``).

    Raises what the hub's reader failed with, other than a lost connection (which it retries:
    the follower then only hears None until the events flow again).
    """
    if not 0 < idle_s <= FOLLOW_IDLE_S:
        raise ValueError(f"idle_s must be within (0, {FOLLOW_IDLE_S}]")
    with event_hub.hub().subscribe(_keys(run_id)[1], after) as subscription:
        while True:
            ready = await subscription.next(idle_s)
            if not ready:
                yield None
                continue
            batch = []
            for seq, fields in ready:
                batch.append(entry := Entry(run_id, seq, fields))
                if entry.terminal:
                    yield batch
                    return
            yield batch


class TokenBuffer:
    """Coalesces one node's ``token`` events into few log entries, keeping their order.

    ``add`` logs the first token at once (the time to first token does not change). A later
    token starts a window, unless one is open: a timer logs what gathered when it closes,
    ``window_s`` later, or ``add`` logs it itself once ``max_tokens`` wait. The window runs from
    the token, not from the last entry: under load, when a stream's tokens arrive further apart
    than the window (the loop is busy writing), they still gather instead of each paying for an
    entry. The producer must call ``flush`` before the node's next non-token event and when it
    ends, so that every token is logged before what follows it. Entries are written one at a
    time, under a lock taken in order, so the text of successive entries is in order too.
    """

    def __init__(
        self,
        run_id: Any,
        node: str | None,
        *,
        window_s: float = TOKEN_WINDOW_S,
        max_tokens: int = TOKEN_BATCH_MAX,
    ) -> None:
        self.run_id = run_id
        self.node = node
        self.window_s = window_s
        self.max_tokens = max_tokens
        self._parts: list[str] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task | None = None
        self._first = True  # nothing taken yet: the next token is logged at once
        self._error: BaseException | None = None  # a timer's failed write, raised by the next call

    async def add(self, text: str) -> None:
        """Take one token; log it now or within ``window_s``."""
        self._raise_error()
        self._parts.append(text)
        if self._first:
            self._first = False
            await self._write()
        elif len(self._parts) >= self.max_tokens:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._write_later())

    async def flush(self) -> None:
        """Log every token taken so far (before a non-token event, or at the end)."""
        timer, self._timer = self._timer, None
        if timer is not None:  # still asleep (a writing timer has already cleared itself)
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        self._raise_error()
        await self._write()
        self._raise_error()

    def discard(self) -> None:
        """Drop what is not logged yet (the node was cancelled: its text restarts anyway)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._parts.clear()

    async def _write_later(self) -> None:
        await asyncio.sleep(self.window_s)
        self._timer = None  # from here on, ``flush`` waits on the lock instead of cancelling
        try:
            await self._write()
        except Exception as exc:  # nobody awaits this task: the producer's next call raises it
            self._error = exc

    async def _write(self) -> None:
        async with self._lock:
            if not self._parts:
                return
            text = "".join(self._parts)
            self._parts.clear()
            await publish(self.run_id, TOKEN, self.node, {"text": text})

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
