"""Request and token quotas in Redis, for any subject (an API key, a workspace, a widget's end
user): a fixed one-minute window of requests and a UTC day of tokens, shared by every process.

A request is admitted against all its subjects at once by one Lua script, so concurrent
requests cannot race past a limit, and a refused request counts against no subject: the
client that keeps knocking on a closed door does not eat its own workspace's budget, nor the
budget of another key of the same workspace. Tokens are spent after the fact (a model call's
size is known only once it has answered), so one call may overshoot a daily quota; the next
request is refused.

Windows follow the web process's clock (UTC): keep the machines' clocks in step (NTP).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

from studio import redis_client

PREFIX = "studio:quota:"
MINUTE = 60
DAY = 86_400
# A minute counter outlives its window a little, so that a request a process stamps just before
# the minute turns still finds it; a day counter is kept an hour past its day for the display.
MINUTE_TTL = MINUTE + 30
DAY_GRACE = 3_600

LimitKind = Literal["requests", "tokens"]

# KEYS: per subject its minute counter then its day counter. ARGV: per subject its requests
# per minute then its tokens per day (-1: no limit), then the minute counter's time to live.
# Every subject is checked before any is counted: a refusal counts against none.
_ADMIT = """
local n = #KEYS / 2
local counts = {}
for i = 1, n do
  local requests = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local rpm = tonumber(ARGV[2 * i - 1])
  if rpm >= 0 and requests >= rpm then return {i, 1, requests} end
  local tpd = tonumber(ARGV[2 * i])
  if tpd >= 0 then
    local tokens = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
    if tokens >= tpd then return {i, 2, tokens} end
  end
end
local ttl = tonumber(ARGV[2 * n + 1])
for i = 1, n do
  local count = redis.call('INCR', KEYS[2 * i - 1])
  if count == 1 then redis.call('EXPIRE', KEYS[2 * i - 1], ttl) end
  counts[i] = count
end
return {0, 0, unpack(counts)}
"""


@dataclass(frozen=True)
class Limit:
    """What one subject may use; None: no limit of that kind (its requests are still counted),
    0: none at all. ``subject``: a stable name such as ``key:12``, ``workspace:3`` or
    ``widget:<flow_id>:<end_user>`` (the counters' keys hold it: keep it short); ``label``
    names it in the refusal's message ("This API key")."""

    subject: str
    requests_per_minute: int | None
    tokens_per_day: int | None
    label: str = ""


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: which subject, which limit (``requests`` per minute or
    ``tokens`` per day), and the whole seconds until its window ends."""

    message: str
    subject: str
    kind: LimitKind
    limit: int
    retry_after: int


@dataclass(frozen=True)
class Admission:
    """The outcome of ``quota_admission``: the refusal, or the requests each limit's subject
    has counted in this minute with this one (in the order of the limits)."""

    refusal: Refusal | None
    requests: tuple[int, ...] = ()


def _minute_key(subject: str, now: float) -> str:
    return f"{PREFIX}m:{subject}:{int(now) // MINUTE}"


def _day_key(subject: str, now: float) -> str:
    return f"{PREFIX}d:{subject}:{int(now) // DAY}"


def _seconds_left(now: float, window: int) -> int:
    return max(1, math.ceil(window - now % window))


def _refusal(limit: Limit, kind: LimitKind, now: float) -> Refusal:
    name = limit.label or limit.subject
    if kind == "requests":
        value, retry_after = limit.requests_per_minute or 0, _seconds_left(now, MINUTE)
        message = f"{name} allows {value} requests a minute: try again in {retry_after} s."
    else:
        value, retry_after = limit.tokens_per_day or 0, _seconds_left(now, DAY)
        message = (
            f"{name} has spent its {value} tokens of today (UTC): "
            f"try again in {retry_after} s, or ask an admin to raise the quota."
        )
    return Refusal(message, limit.subject, kind, value, retry_after)


_admit_script = None


def _script():
    global _admit_script
    if _admit_script is None:  # registered once: later calls send EVALSHA, not the source
        _admit_script = redis_client.client().register_script(_ADMIT)
    return _admit_script


def quota_admission(limits: list[Limit]) -> Admission:
    """Count one request against every subject of ``limits``, in one Redis round trip, unless
    one of them has reached its requests this minute or its tokens today: then count nothing
    and say why (the first subject refused, in the order given)."""
    if not limits:
        return Admission(None)
    now = time.time()
    keys: list[str] = []
    args: list[int] = []
    for limit in limits:
        keys += [_minute_key(limit.subject, now), _day_key(limit.subject, now)]
        args += [_or_unlimited(limit.requests_per_minute), _or_unlimited(limit.tokens_per_day)]
    refused, kind, *counts = _script()(keys=keys, args=[*args, MINUTE_TTL])
    if refused:
        limit = limits[int(refused) - 1]
        return Admission(_refusal(limit, "requests" if kind == 1 else "tokens", now))
    return Admission(None, tuple(int(c) for c in counts))


def _or_unlimited(value: int | None) -> int:
    return -1 if value is None else value


def quota_admit(limits: list[Limit]) -> Refusal | None:
    """Count one request against every subject of ``limits`` atomically, or the refusal
    (nothing counted then). See ``quota_admission`` for the counts."""
    return quota_admission(limits).refusal


def _spend_pipeline(pipe, subjects: list[str], tokens: int, now: float) -> None:
    day_end = (int(now) // DAY + 1) * DAY
    for subject in subjects:
        key = _day_key(subject, now)
        pipe.incrby(key, tokens)
        pipe.expireat(key, day_end + DAY_GRACE)


def quota_spend(subjects: list[str], tokens: int) -> None:
    """Add ``tokens`` to each subject's count of today (UTC), in one round trip; the counters
    expire after their day. Nothing for no tokens."""
    if tokens <= 0 or not subjects:
        return
    pipe = redis_client.client().pipeline(transaction=False)
    _spend_pipeline(pipe, subjects, tokens, time.time())
    pipe.execute()


async def aquota_spend(subjects: list[str], tokens: int) -> None:
    """``quota_spend`` for the event loop (the asynchronous client)."""
    if tokens <= 0 or not subjects:
        return
    pipe = redis_client.async_client().pipeline(transaction=False)
    _spend_pipeline(pipe, subjects, tokens, time.time())
    await pipe.execute()


def quota_usage_many(subjects: list[str]) -> dict[str, tuple[int, int]]:
    """Each subject's (requests this minute, tokens today), in one round trip: for display."""
    if not subjects:
        return {}
    now = time.time()
    keys = [k for s in subjects for k in (_minute_key(s, now), _day_key(s, now))]
    values = [int(v or 0) for v in redis_client.client().mget(keys)]
    return {s: (values[2 * i], values[2 * i + 1]) for i, s in enumerate(subjects)}


def quota_usage(subject: str) -> tuple[int, int]:
    """The subject's (requests this minute, tokens today), for display."""
    return quota_usage_many([subject])[subject]
