"""The shared reader of event logs: one ``XREAD BLOCK`` per event loop for every log followed in it.

A follower ``subscribe``s to a log (a Redis stream whose entry ids are ``<seq>-0``, as
``studio.events`` writes them) from the last sequence number it has. The loop's hub reads every
followed log in one ``XREAD BLOCK`` on a connection of its own, from each log's last id, and hands
each new entry to that log's followers, so a process streaming to a thousand sockets holds one
blocked read instead of a thousand, and one reply carries the entries of many runs.

Nothing is lost or repeated:

- A log new to the hub is read from the first follower's ``after``: the hub's read is its replay.
- A follower of a log the hub already reads has missed the entries the hub handed out before it
  came, up to the log's last id at that instant: it reads those itself (``XRANGE``), then takes
  the hub's, which start right after. Subscribing is synchronous, so no entry falls between.
- A reply is applied to a log only if the log's last id is still the one the read was sent with
  (a log dropped and followed again meanwhile is read again from its new position).
- The hub retries a lost connection from each log's last id; its followers only wait.
- A follower that falls ``BACKLOG_MAX`` entries behind (its socket's task is starved) drops what
  the hub gave it and reads the gap from the log itself, so a slow follower costs no memory.

A new log joins a read in flight through a wake-up: the hub's own stream key is part of every
read, and ``subscribe`` appends to it (one ``XADD`` in flight at a time, trimmed to one entry,
expiring) so the blocked read returns and the next one includes the new log. Followers that leave
are dropped; when none remain the same wake-up ends the read, the reader closes its connection,
and the next follower starts a new one. (Cancelling the read instead is not reliable: redis-py
swallows a cancellation that lands while it connects.)
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
import weakref

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from studio import redis_client

logger = logging.getLogger(__name__)

BLOCK_MS = 5_000  # one read's longest wait: well under the client's socket timeout
READ_COUNT = 1_000  # entries per log per read
BACKLOG_MAX = 2_000  # entries waiting for one follower before it reads the log itself instead
RETRY_S = (0.05, 0.2, 0.5, 1.0, 2.0)  # waits between attempts after a lost connection
WAKE_TTL_S = 300  # the wake key of a process that died goes away

Entry = tuple[int, dict]  # (sequence number, the entry's fields)
_LOST = (RedisConnectionError, RedisTimeoutError, OSError)

_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """The running event loop's hub."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
    return found


def _seq(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


def _fields(flat: list) -> dict:
    pairs = iter(flat)
    return dict(zip(pairs, pairs, strict=False))


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


_XREAD_HEAD = b"".join(
    _bulk(part) for part in (b"XREAD", b"COUNT", b"%d" % READ_COUNT, b"BLOCK", b"%d" % BLOCK_MS)
) + _bulk(b"STREAMS")


async def _log_range(key: str, after: int, upto: int) -> list[Entry]:
    """The log's entries with ``after < seq <= upto``, read by the follower itself."""
    entries = await redis_client.async_client().xrange(key, min=f"({after}-0", max=f"{upto}-0")
    return [(_seq(entry_id), fields) for entry_id, fields in entries]


class Subscription:
    """One follower's place in one log. ``next`` gives its entries in order, each once, all
    those that are ready at once."""

    def __init__(self, owner: Hub, key: str, after: int, replay_to: int) -> None:
        self.hub = owner
        self.key = key
        self.last = after  # the last sequence number handed to the follower
        # Entries up to this one come from the log itself (missed before joining, or dropped).
        self._read_to = replay_to
        self._pending: collections.deque[list[Entry]] = collections.deque()
        self._pending_count = 0
        self._waiter: asyncio.Future | None = None
        self._error: BaseException | None = None

    def push(self, batch: list[Entry]) -> None:
        """The hub's new entries for this log (synchronous: it runs inside the hub's dispatch)."""
        if self._pending_count + len(batch) > BACKLOG_MAX:
            self._read_to = max(self._read_to, batch[-1][0])
            self._pending.clear()
            self._pending_count = 0
        else:
            self._pending.append(batch)
            self._pending_count += len(batch)
        self._wake()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self, idle_s: float) -> list[Entry]:
        """The entries after ``last``, as soon as there are any; [] after ``idle_s`` without."""
        while True:
            if self._read_to > self.last:
                upto = self._read_to
                batch = self._fresh(await _log_range(self.key, self.last, upto))
                self.last = upto  # what the log no longer holds (expired) is gone for good
                if batch:
                    return batch
                continue
            if self._pending:
                # Everything ready goes at once: a follower that lags catches up in big steps.
                batch = self._fresh(
                    self._pending.popleft()
                    if len(self._pending) == 1
                    else [entry for ready in self._pending for entry in ready]
                )
                self._pending.clear()
                self._pending_count = 0
                if batch:
                    self.last = batch[-1][0]
                    return batch
                continue
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(idle_s):
                    await self._waiter
            except TimeoutError:
                return []
            finally:
                self._waiter = None

    def _fresh(self, batch: list[Entry]) -> list[Entry]:
        if batch and batch[0][0] <= self.last:
            return [entry for entry in batch if entry[0] > self.last]
        return batch

    def close(self) -> None:
        self.hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _Log:
    __slots__ = ("last", "followers", "packed_key")

    def __init__(self, key: str, last: int) -> None:
        self.last = last  # the last sequence number the hub handed out
        self.followers: set[Subscription] = set()
        self.packed_key = _bulk(key.encode())


class Hub:
    """One event loop's shared reader. Use ``subscribe``; the rest is its machinery."""

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}
        self._version = 0  # bumped when a log joins
        self._reader: _Reader | None = None
        self._waking: asyncio.Task | None = None
        self.wake_key = f"studio:event-hub:{uuid.uuid4().hex}:wake"

    @property
    def followed(self) -> int:
        return len(self._logs)

    def subscribe(self, key: str, after: int) -> Subscription:
        """Follow log ``key`` from ``after``: the returned subscription's ``next`` gives every
        entry with a larger sequence number. Close it (``with``) when done."""
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log(key, after)
            self._version += 1
            replay_to = 0
        else:
            replay_to = log.last  # handed out before this follower came
        subscription = Subscription(self, key, after, replay_to)
        log.followers.add(subscription)
        if self._reader is None:
            self._reader = _Reader(self)
        else:
            self._nudge()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        log = self._logs.get(subscription.key)
        if log is None or subscription not in log.followers:
            return
        log.followers.discard(subscription)
        if not log.followers:
            del self._logs[subscription.key]
            if not self._logs:
                self._version += 1  # the read in flight is for nobody: end it now
                self._nudge()

    # --- The reader's side ----------------------------------------------------------------

    def keep_reading(self, reader: _Reader) -> bool:
        """Whether ``reader`` reads on; if not, the next follower starts a new one."""
        if self._logs and self._reader is reader:
            return True
        if self._reader is reader:
            self._reader = None
        return False

    def request(self) -> tuple[int, dict[str, int], bytes]:
        """The next read: the hub's version, each log's last sequence number, and the command.

        The command is packed here, from each log's key packed once: redis-py's packing of an
        ``XREAD`` over a thousand keys took 3 ms, more than the read itself.
        """
        sent = {key: log.last for key, log in self._logs.items()}
        n = len(sent) + 1  # and the wake key
        command = [b"*%d\r\n" % (6 + 2 * n), _XREAD_HEAD]
        command += [log.packed_key for log in self._logs.values()]
        command.append(_bulk(self.wake_key.encode()))
        command += [_bulk(b"%d-0" % last) for last in sent.values()]
        command.append(_bulk(b"$"))  # only what is added while this read waits
        return self._version, sent, b"".join(command)

    def dispatch(self, reply: dict | list, sent: dict[str, int]) -> None:
        """Hand a read's entries to followers: the reply as parsed, a map of the keys (RESP3) or
        a list of pairs (RESP2), each entry an id and its fields as a flat list."""
        for raw_key, items in reply.items() if isinstance(reply, dict) else reply:
            key = raw_key.decode()
            log = self._logs.get(key)
            if log is None or not items or sent.get(key) != log.last:
                continue  # the wake key, a log no longer followed, or one followed anew
            batch = [(_seq(entry_id), _fields(flat)) for entry_id, flat in items]
            log.last = batch[-1][0]
            for subscription in log.followers:
                subscription.push(batch)

    def reader_failed(self, reader: _Reader, error: BaseException) -> None:
        """A fault that is not a lost connection: every follower hears it, the next starts over."""
        if self._reader is not reader:
            return
        self._reader = None
        logs, self._logs = self._logs, {}
        for log in logs.values():
            for subscription in log.followers:
                subscription.fail(error)

    def _nudge(self) -> None:
        """Wake the read in flight if a log joined after it was sent."""
        reader = self._reader
        if reader is None or self._waking is not None or not reader.stale(self._version):
            return
        self._waking = asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        try:
            pipe = redis_client.async_client().pipeline(transaction=False)
            pipe.xadd(self.wake_key, {"w": "1"}, maxlen=1, approximate=False)
            pipe.expire(self.wake_key, WAKE_TTL_S)
            await pipe.execute()
        except (RedisError, OSError):
            # The hub's read fails too and retries with every log; no need to insist.
            self._waking = None
            logger.warning("could not wake the event hub's read", exc_info=True)
            return
        self._waking = None
        self._nudge()  # a log that joined while this wake-up was on its way


class _Reader:
    """The hub's reading task and its connection, from its first follower to its last."""

    def __init__(self, owner: Hub) -> None:
        self.hub = owner
        self.reading: int | None = None  # the hub's version the read in flight was sent at
        self.client = redis_client.dedicated_async_client("studio-event-hub")
        self.connection = None
        self.task = asyncio.get_running_loop().create_task(self._run(), name="event-hub")

    async def _read(self, command: bytes) -> dict | list | None:
        """Send a packed command on the reader's connection (made again after a loss) and read
        its reply as hiredis parses it: no redis-py response callback."""
        if self.connection is None:
            self.connection = await self.client.connection_pool.get_connection()
        await self.connection.send_packed_command(command, check_health=False)
        return await self.connection.read_response()

    def stale(self, version: int) -> bool:
        return self.reading is not None and self.reading < version

    async def _run(self) -> None:
        failures = 0
        try:
            while self.hub.keep_reading(self):
                version, sent, command = self.hub.request()
                self.reading = version
                try:
                    reply = await self._read(command)
                except _LOST:
                    self.reading = None
                    wait = RETRY_S[min(failures, len(RETRY_S) - 1)]
                    failures += 1
                    logger.warning("event hub lost Redis; retrying in %s s", wait, exc_info=True)
                    await asyncio.sleep(wait)
                    continue
                self.reading = None
                if asyncio.current_task().cancelling():
                    # redis-py swallows a cancellation that lands while it connects.
                    raise asyncio.CancelledError
                failures = 0
                if reply:
                    self.hub.dispatch(reply, sent)
        except Exception as exc:
            logger.exception("event hub failed")
            self.hub.reader_failed(self, exc)
        finally:
            if self.connection is not None:
                await self.client.connection_pool.release(self.connection)
            await self.client.aclose()
