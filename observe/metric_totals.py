"""The all-time totals ``/metrics`` reports (runs by status, tokens, failed model calls), cheap
however large the tables grow: rows that can no longer change are counted once, into a state
kept in Redis, and each scrape counts only the rows after that state's bounds, through indexes.

Runs are bounded by ``deadline_at`` (the ``run_status_deadline`` index): a run never gets a
deadline in the past (it is set ahead of its creation and only ever pushed later), and a run
whose deadline has passed is failed by the sweeper; so once every run with a deadline up to a
moment has ended, their counts by status are final. Usage rows are bounded by ``created_at``
(their own index): they are never changed, and are committed just after their insert.

The state is one Redis value, a consistent pair of bounds and counts: two scrapes at once both
write a correct one (the last wins), and a lost state is rebuilt by the next scrape, which then
counts the tables once in full. Deleted rows stay counted: these are Prometheus counters.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog.models import Usage
from flows.models import TERMINAL, Run, RunStatus
from studio import redis_client

STATE_KEY = "studio:metrics:totals"
# A usage row carries the time of its INSERT, and the transaction that inserts it commits right
# after (``catalog.services.usage``): one inserted longer ago than this is visible by now.
USAGE_SETTLE = timedelta(minutes=10)
# Slack for clocks: the machine that set a new run's deadline may be a little behind this one.
CLOCK_SLACK = timedelta(minutes=1)
ONGOING = tuple(status for status in RunStatus.values if status not in TERMINAL)


@dataclass
class Totals:
    """Counts over every row up to ``runs_until`` (runs, by deadline) and ``usage_until``
    (usage rows, by creation), or, as ``totals()`` returns them, over every row."""

    runs_until: datetime
    usage_until: datetime
    runs: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    errors: int = 0

    def plus(self, other: Totals) -> Totals:
        return Totals(
            runs_until=max(self.runs_until, other.runs_until),
            usage_until=max(self.usage_until, other.usage_until),
            runs={s: self.runs.get(s, 0) + other.runs.get(s, 0) for s in RunStatus.values},
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            errors=self.errors + other.errors,
        )


def totals() -> Totals:
    """Runs by status, tokens and failed calls over every row: the frozen state moved up to
    what has settled since it was kept (and kept again), plus the rows after it, counted now.
    A few index range scans; the first scrape without a state counts the tables in full."""
    now = timezone.now()
    kept = _load()
    runs_until = _runs_settled_until(now)
    usage_until = now - USAGE_SETTLE
    if kept is None:
        frozen = _counted(None, runs_until, None, usage_until)
    else:
        # Never backwards: what was frozen stays counted once (another web process's clock).
        runs_until = max(runs_until, kept.runs_until)
        usage_until = max(usage_until, kept.usage_until)
        frozen = kept.plus(_counted(kept.runs_until, runs_until, kept.usage_until, usage_until))
    _save(frozen)
    return frozen.plus(_counted(runs_until, None, usage_until, None))


def _runs_settled_until(now: datetime) -> datetime:
    """The latest moment up to which every run with a deadline has ended: before the earliest
    deadline of a run not yet ended (the ``run_status_deadline`` index), and before now."""
    earliest = (
        Run.objects.filter(status__in=ONGOING)
        .order_by("deadline_at")
        .values_list("deadline_at", flat=True)
        .first()
    )
    bound = now - CLOCK_SLACK
    # Counted up to and including the bound: stop just before that run's deadline.
    return bound if earliest is None else min(bound, earliest - timedelta(microseconds=1))


def _counted(
    runs_after: datetime | None,
    runs_until: datetime | None,
    usage_after: datetime | None,
    usage_until: datetime | None,
) -> Totals:
    """The counts of the runs with a deadline in (runs_after, runs_until] and the usage rows
    made in (usage_after, usage_until]; None leaves that end open."""
    # Every status named: the index's first column, so that a deadline range is a few ranges of
    # the index rather than a walk of all of it.
    runs = Run.objects.filter(status__in=RunStatus.values)
    if runs_after is not None:
        runs = runs.filter(deadline_at__gt=runs_after)
    if runs_until is not None:
        runs = runs.filter(deadline_at__lte=runs_until)
    # COUNT(*), not of a column: the count is read from the index alone.
    by_status = dict(runs.values_list("status").annotate(n=Count("*")).order_by())
    usage = Usage.objects.all()
    if usage_after is not None:
        usage = usage.filter(created_at__gt=usage_after)
    if usage_until is not None:
        usage = usage.filter(created_at__lte=usage_until)
    sums = usage.aggregate(
        i=Sum("input_tokens"), o=Sum("output_tokens"), errors=Count("id", filter=Q(ok=False))
    )
    return Totals(
        runs_until=runs_until or timezone.now(),
        usage_until=usage_until or timezone.now(),
        runs={status: by_status.get(status, 0) for status in RunStatus.values},
        input_tokens=sums["i"] or 0,
        output_tokens=sums["o"] or 0,
        errors=sums["errors"] or 0,
    )


def _load() -> Totals | None:
    raw = redis_client.client().get(STATE_KEY)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        runs_until = parse_datetime(data["runs_until"])
        usage_until = parse_datetime(data["usage_until"])
        if runs_until is None or usage_until is None:
            return None
        return Totals(
            runs_until=runs_until,
            usage_until=usage_until,
            runs={str(k): int(v) for k, v in data["runs"].items()},
            input_tokens=int(data["input_tokens"]),
            output_tokens=int(data["output_tokens"]),
            errors=int(data["errors"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # not a state this module wrote: counted afresh


def _save(frozen: Totals) -> None:
    data = asdict(frozen)
    data["runs_until"] = frozen.runs_until.isoformat()
    data["usage_until"] = frozen.usage_until.isoformat()
    redis_client.client().set(STATE_KEY, json.dumps(data))
