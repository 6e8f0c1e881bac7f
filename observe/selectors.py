"""The runs list: the runs a member may see, filtered, searched and paged by keyset."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import BooleanField, DateTimeField, Exists, OuterRef, QuerySet, Sum
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog.models import Usage
from conversations.models import Message
from flows.models import Flow, Run
from studio import access

PAGE_SIZE = 50
# How many of the newest runs a search reads before it turns to the full-text index.
SEARCH_WINDOW = 2000

# The expression of the ``run_search`` GIN index (flows migration 0011), repeated exactly:
# PostgreSQL uses an expression index only for the same expression.
SEARCH_DOCUMENT = (
    "to_tsvector('simple'::regconfig, "
    'left("flows_run"."inputs"::text || \' \' || "flows_run"."outputs"::text, 100000))'
)
TS_QUERY = "websearch_to_tsquery('simple'::regconfig, %s)"


@dataclass(frozen=True)
class RunFilters:
    """What the runs list is narrowed to; every field optional (None or empty: not narrowed)."""

    flow_ids: tuple[int, ...] = ()
    version: int | None = None
    status: str = ""
    source: str = ""
    user_id: int | None = None
    api_key_id: int | None = None
    end_user: str = ""
    since: date | None = None
    until: date | None = None
    feedback: str = ""  # "up", "down", "any" or ""
    q: str = ""  # searched by ``runs_page(search=…)``, which picks the plan


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last run's (created_at, id); the next page starts after it."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor ``token`` names; ValueError if it is not one this list made."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            stamp, _, run_id = raw.partition("|")
            created_at = parse_datetime(stamp)
            if created_at is None or created_at.tzinfo is None:
                raise ValueError
            return cls(created_at=created_at, id=uuid.UUID(run_id))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ValueError("not a page cursor") from None


@dataclass
class RunRow:
    """One line of the list: the run and what other tables say of it."""

    run: Run
    cost: Decimal = Decimal("0")
    ttft_ms: float | None = None
    end_user: str = ""
    feedback: list[int] = field(default_factory=list)

    @property
    def duration_ms(self) -> float | None:
        if self.run.started_at is None or self.run.finished_at is None:
            return None
        return (self.run.finished_at - self.run.started_at).total_seconds() * 1000

    @property
    def tokens(self) -> int | None:
        usage = self.run.usage or {}
        total = usage.get("total_tokens")
        if total is None and ("input_tokens" in usage or "output_tokens" in usage):
            total = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
        return total


@dataclass(frozen=True)
class RunPage:
    rows: list[RunRow]
    next_cursor: str | None


def visible_flows(user, workspace_id: int) -> QuerySet[Flow]:
    """The workspace's flows, and agents' backing flows, that ``user`` may view."""
    return access.scope(user, workspace_id, Flow.objects.all(), "view")


def runs_filtered(user, workspace_id: int, filters: RunFilters) -> QuerySet[Run]:
    """The runs of flows ``user`` may view in the workspace, narrowed by ``filters``, newest
    first. One query to know the flows (whatever the grants), then the runs' query."""
    runs = Run.objects.filter(workspace_id=workspace_id)
    visible = sorted(visible_flows(user, workspace_id).values_list("pk", flat=True))
    # The scope as a list of ids, not a subquery: PostgreSQL cannot estimate the scope's
    # subquery, and then sorts every run of the visible flows instead of walking the
    # (workspace, created_at, id) index. Always the list, even for a member who sees every
    # flow: a flow made meanwhile, which they may not see, is never among its runs.
    runs = runs.filter(flow_id__in=visible)
    runs = _narrowed(runs, filters)
    return runs.order_by("-created_at", "-id")


def _narrowed(runs: QuerySet[Run], f: RunFilters) -> QuerySet[Run]:
    if f.flow_ids:
        runs = runs.filter(flow_id__in=f.flow_ids)
    if f.version is not None:
        runs = runs.filter(flow_version__number=f.version)
    if f.status:
        runs = runs.filter(status=f.status)
    if f.source:
        runs = runs.filter(source=f.source)
    if f.user_id is not None:
        runs = runs.filter(created_by_id=f.user_id)
    if f.api_key_id is not None:
        runs = runs.filter(api_key_id=f.api_key_id)
    if f.end_user:
        runs = runs.filter(
            Exists(Message.objects.filter(run=OuterRef("pk"), conversation__end_user=f.end_user))
        )
    if f.since is not None:
        runs = runs.filter(created_at__gte=_day_start(f.since))
    if f.until is not None:
        runs = runs.filter(created_at__lt=_day_start(f.until + timedelta(days=1)))
    if f.feedback:
        rated = Message.objects.filter(run=OuterRef("pk"), feedback__isnull=False)
        if f.feedback in ("up", "down"):
            rated = rated.filter(feedback=1 if f.feedback == "up" else -1)
        runs = runs.filter(Exists(rated))
    return runs


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def runs_page(
    runs: QuerySet[Run], *, after: Cursor | None, search: str = "", size: int = PAGE_SIZE
) -> RunPage:
    """A page of ``runs`` (ordered newest first) after ``after``, by keyset on (created_at,
    id), those whose inputs or outputs hold ``search``'s words when it is given: as fast deep
    in the list as at its top, and a run that arrives meanwhile never shifts a page (it sorts
    before every cursor). Four to six queries, whatever ``size``."""
    if after is not None:
        runs = runs.filter(
            RawSQL(
                '("flows_run"."created_at", "flows_run"."id") < (%s, %s)',
                (after.created_at, after.id),
                output_field=BooleanField(),
            )
        )
    found = _searched(runs, search, size) if search else _fetched(runs, size)
    more = len(found) > size
    found = found[:size]
    rows = _with_usage_and_feedback(found)
    last = found[-1] if more else None
    next_cursor = Cursor(created_at=last.created_at, id=last.id).encode() if last else None
    return RunPage(rows=rows, next_cursor=next_cursor)


def _fetched(runs: QuerySet[Run], size: int) -> list[Run]:
    return _joined(_first_ids(runs, size))


def _first_ids(runs: QuerySet[Run], size: int) -> list[uuid.UUID]:
    return list(runs.values_list("pk", flat=True)[: size + 1])


def _joined(ids: list[uuid.UUID]) -> list[Run]:
    """The runs ``ids`` names, in that order, with what a row shows of their flow, version and
    author, by primary key. Apart from the query that finds them: with the joins in that
    query, PostgreSQL chose the join order by the statistics, and at 1M runs it walked every
    run by the version index for a merge join with the flows' versions (9 s for the failed
    runs of one flow, not 30 ms)."""
    joined = (
        Run.objects.filter(pk__in=ids)
        .select_related("flow", "flow__agent", "flow_version", "created_by", "api_key")
        .defer("history", "variables", "flow__draft", "flow_version__graph")
    )
    by_id = {run.pk: run for run in joined}
    return [by_id[pk] for pk in ids if pk in by_id]


def _searched(runs: QuerySet[Run], search: str, size: int) -> list[Run]:
    """The first ``size + 1`` of ``runs`` that match ``search``, by one of two plans, so that
    neither a common word nor a rare one costs a walk of the whole table: PostgreSQL's estimate
    of a word's frequency is too rough to choose between them itself. First among the newest
    SEARCH_WINDOW runs (the keyset index, the text of each matched as it is read): enough for
    a word in one run of 40 or more. Failing that, through the full-text index (every match
    found, then sorted: cheap, as the word is rare). Each query is written so that its every
    plan is one of these, whatever the table's statistics say: stale ones (the newest runs
    past the histogram, or a table never analyzed) once turned a search into a walk of the
    whole table's text, seconds instead of 100 ms."""
    # The window's oldest run, by the first page's plan (the keyset index, OFFSET
    # SEARCH_WINDOW - 1): the window is then a range of that index with constant ends. Not
    # ``pk__in=<the window's ids>``: that semi-join PostgreSQL planned by the statistics.
    boundary = runs.values_list("created_at", "id", "workspace_id")[
        SEARCH_WINDOW - 1 : SEARCH_WINDOW
    ]
    if not boundary:  # fewer runs than the window: all are in it, and read by the keyset index
        return _fetched(runs.filter(_matched_unindexed(search)), size)
    created_at, run_id, workspace_id = boundary[0]
    # The plain ``created_at >=`` is implied by the row comparison; PostgreSQL estimates it
    # from the histogram (and past the histogram's end, from the index), the row comparison
    # it barely estimates.
    window = runs.filter(created_at__gte=created_at).filter(
        RawSQL(
            '("flows_run"."created_at", "flows_run"."id") >= (%s, %s)',
            (created_at, run_id),
            output_field=BooleanField(),
        )
    )
    found = _first_ids(window.filter(_matched_unindexed(search)), size)
    if len(found) > size:
        return _joined(found)
    # Every match's id by the full-text index alone, in a subquery PostgreSQL runs once, by
    # itself, before the page's query (an InitPlan: ``ARRAY(SELECT …)``), so that no plan
    # joins it to the runs and matches each one's text (``IN (SELECT …)`` is flattened into
    # such a join). Its workspace's condition is written so that no other index serves it.
    # Then the matches are sorted by an expression, so that the plan cannot walk the keyset
    # index either.
    hits = RawSQL(
        f'"flows_run"."id" = ANY(ARRAY(SELECT "flows_run"."id" FROM "flows_run" '
        f'WHERE {SEARCH_DOCUMENT} @@ {TS_QUERY} AND "flows_run"."workspace_id" + 0 = %s))',
        (search, workspace_id),
        output_field=BooleanField(),
    )
    unindexed = RawSQL('"flows_run"."created_at" + interval \'0 s\'', (), DateTimeField())
    return _fetched(runs.filter(hits).order_by(unindexed.desc(), "-id"), size)


def _matched_unindexed(search: str) -> RawSQL:
    """The condition that a run's text holds ``search``, written so that the full-text index
    cannot serve it: the window's plan then reads the window's range of the keyset index, never
    a common word's postings (a walk of the table)."""
    document = f"({SEARCH_DOCUMENT} || ''::tsvector)"
    return RawSQL(f"{document} @@ {TS_QUERY}", (search,), output_field=BooleanField())


def _with_usage_and_feedback(runs: list[Run]) -> list[RunRow]:
    """Rows for ``runs`` with each one's cost and first-token time (its usage rows: the first
    model call's TTFT) and its answer's feedback and widget end user: two queries."""
    rows = {run.id: RunRow(run=run) for run in runs}
    if not rows:
        return []
    # By the ``usage_run`` index (catalog migration 0007): however far apart in time the page's
    # runs lie, a few index probes.
    usage = (
        Usage.objects.filter(run_id__in=rows, workspace_id=runs[0].workspace_id)
        .values("run_id")
        .annotate(total_cost=Sum("cost"), ttfts=ArrayAgg("ttft_ms", order_by="created_at"))
        .order_by()
    )
    for entry in usage:
        row = rows[entry["run_id"]]
        row.cost = entry["total_cost"] or Decimal("0")
        row.ttft_ms = next((t for t in entry["ttfts"] if t is not None), None)
    messages = Message.objects.filter(run_id__in=rows).values(
        "run_id", "feedback", "conversation__end_user"
    )
    for message in messages:
        row = rows[message["run_id"]]
        row.end_user = row.end_user or message["conversation__end_user"]
        if message["feedback"] is not None:
            row.feedback.append(message["feedback"])
    return list(rows.values())


def cursor_or_none(token: str) -> Cursor | None:
    return Cursor.decode(token) if token else None


def flow_choices(user, workspace_id: int) -> list[tuple[Any, str]]:
    """The flows and agents the filter offers: those ``user`` may view."""
    flows = (
        visible_flows(user, workspace_id).order_by("kind", "name").values_list("id", "name", "kind")
    )
    return [(pk, f"{name} (agent)" if kind == "agent" else name) for pk, name, kind in flows]
