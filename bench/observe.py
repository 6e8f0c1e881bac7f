"""The runs list and ``/metrics`` benchmark: how long a page of the runs list, and a scrape of
``/metrics``, take at 100k and 1M runs.

It fills a fresh database of its own (an embedded PostgreSQL under ``var/bench-observe/``,
``STUDIO_BENCH_DIR``, unless ``DATABASE_URL`` is set) with runs in SQL (``INSERT … SELECT
generate_series``: a question of 12 words and an answer of 30 from a vocabulary of 200, one usage
row per run, feedback on one run in 50), growing the table to each size in turn, then times a
page of the list as the page reads it (``observe.selectors``: the runs query with the member's
scope, then the page's usage and feedback queries) for:

- ``first``: the newest page, no filter;
- ``deep``: a page by keyset from the middle of the table;
- ``filtered``: status failed and one flow of twenty;
- ``search_common``: full-text search for a word in about one run in five;
- ``search_rare``: full-text search for a word in one run in 5,000.

The two searches are timed twice at each size: first with the statistics stale (autovacuum off
on the bench's tables and no ``ANALYZE`` since the table grew: at the first size never analyzed,
at the next the statistics of the size before, the newest runs all past their histogram, as a
busy table finds itself between two autovacuums), then, like every other case, after a fresh
``ANALYZE``. A plan that depends on lucky statistics shows here as a gap between the two.

and a scrape of ``/metrics`` (``observe.metrics``: every figure read from the tables and the
embedded Redis, rendered as Prometheus text): ``metrics_scrape`` as Prometheus makes it every
scrape interval, ``metrics_first_scrape`` the first one after Redis lost the totals' state.

Each is run ``--queries`` times after one warm-up; the table gives p50 and p95 in milliseconds.
Run it from the repository root::

    .venv/bin/python bench/observe.py [--sizes 100000,1000000] [--queries 30] [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(os.environ.get("STUDIO_BENCH_DIR") or REPO / "var" / "bench-observe")
# Before anything from studio reads it: the bench's data never mixes with var/pg.
os.environ["STUDIO_VAR_DIR"] = str(BENCH_DIR)
os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
sys.path.insert(0, str(REPO))

from bench.figures import percentile  # noqa: E402
from studio import embedded, launch  # noqa: E402

WORKSPACE = "bench-observe"
FLOWS = 20
BATCH = 100_000
WORDS = 200
COMMON_WORD = "w7"  # one of the vocabulary: in about 1 - (199/200)^42 ≈ 19% of runs
RARE_WORD = "zanzibar"  # added to the question of one run in RARE_EVERY
RARE_EVERY = 5_000
STEP = timedelta(seconds=5)  # between two runs' creation
STATS_TABLES = ("flows_run", "catalog_usage", "conversations_message")


def start_database() -> tuple[bool, subprocess.Popen | None]:
    """The embedded PostgreSQL (True: this script started it), migrated, and the embedded Redis
    ``/metrics`` reads the queues from (its process, if this script started it)."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    started, redis = False, None
    if not os.environ.get("REDIS_URL"):
        redis = embedded.redis_start()
        os.environ["REDIS_URL"] = embedded.embedded_redis_url()
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = embedded.postgres_url()
        started = True
    result = subprocess.run(
        [launch.PYTHON, "manage.py", "migrate", "--no-input"],
        cwd=REPO,
        env=os.environ,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit("manage.py migrate failed")
    return started, redis


def fresh_workspace():
    """The bench's workspace, emptied, with its owner and FLOWS published flows."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from flows.models import Flow, FlowVersion
    from workspaces.models import Workspace
    from workspaces.services import member_add, workspace_create

    with connection.cursor() as cursor:
        # The bench's own database: its runs, usage and conversations go, whatever they were.
        cursor.execute("TRUNCATE flows_run, catalog_usage, conversations_conversation CASCADE")
        for table in STATS_TABLES:
            # Statistics change only when ``analyze`` says, so stale ones stay stale.
            cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    Workspace.objects.filter(slug=WORKSPACE).delete()
    workspace = workspace_create(slug=WORKSPACE, name="Bench observe")
    user, _ = get_user_model().objects.get_or_create(username="bench-observe-owner")
    member_add(workspace=workspace, user=user, role="owner")
    flows = []
    for n in range(FLOWS):
        flow = Flow.objects.create(workspace=workspace, slug=f"flow-{n}", name=f"Flow {n}")
        version = FlowVersion.objects.create(flow=flow, number=1, graph={"nodes": [], "edges": []})
        flow.published_version = version
        flow.save(update_fields=["published_version"])
        flows.append(flow)
    return workspace, user, flows


def insert_select(
    model, exprs: dict[str, str], source: str, params: list, source_params: list
) -> int:
    """``INSERT INTO model's table SELECT … FROM source``: ``exprs`` gives the SQL of some
    columns (with ``params``, in order), every other column takes its field's default (or
    NULL); ``source_params`` fill ``source``. Returns the row count."""
    from django.db import connection

    columns, values, args = list(exprs), list(exprs.values()), list(params)
    for field in model._meta.concrete_fields:
        if field.column in exprs or field.db_returning:  # an identity column fills itself
            continue
        columns.append(field.column)
        if field.has_default() or not field.null:
            default = field.get_default()  # "" for a text field without a default
            if default is None:
                raise ValueError(f"no value for {model.__name__}.{field.column}")
            values.append("%s")
            args.append(field.get_db_prep_save(default, connection))
        else:
            values.append("NULL")
    quoted = ", ".join(f'"{column}"' for column in columns)
    sql = f"INSERT INTO {model._meta.db_table} ({quoted}) SELECT {', '.join(values)} FROM {source}"
    with connection.cursor() as cursor:
        # ``%`` is SQL's modulo here, ``%s`` a parameter.
        cursor.execute(re.sub(r"%(?!s)", "%%", sql), args + source_params)
        return cursor.rowcount


def _words(first: int, count: int) -> str:
    """SQL for ``count`` words of the vocabulary picked by hashing the row number ``i``."""
    return (
        "array_to_string(ARRAY(SELECT 'w' || (abs(hashint8(i * 64 + k)) % "
        f"{WORDS}) FROM generate_series({first}, {first + count - 1}) AS k), ' ')"
    )


def fill(workspace, user, flows, start: int, end: int, base) -> None:
    """Runs ``start``…``end`` (1-based), created STEP apart from ``base``, with their usage
    rows and, on one run in 50, an answer's message with feedback."""
    from catalog.models import Usage
    from conversations.models import Conversation, Message
    from flows.models import Run

    flow_ids = [flow.id for flow in flows]
    version_ids = [flow.published_version_id for flow in flows]
    question = f"{_words(1, 12)} || CASE WHEN i % {RARE_EVERY} = 0 THEN ' {RARE_WORD}' ELSE '' END"
    insert_select(
        Run,
        {
            "id": "gen_random_uuid()",
            "workspace_id": "%s",
            "flow_id": f"(%s::bigint[])[1 + i % {FLOWS}]",
            "flow_version_id": f"(%s::bigint[])[1 + i % {FLOWS}]",
            # Independent of the flow (``i % FLOWS``): one run in 20 failed, in every flow.
            "status": "CASE WHEN abs(hashint8(i)) % 20 = 0 THEN 'failed' ELSE 'succeeded' END",
            "source": "(ARRAY['chat','api','openai','studio','widget','mcp'])[1 + i % 6]",
            "inputs": f"jsonb_build_object('message', {question})",
            "outputs": f"jsonb_build_object('text', {_words(13, 30)})",
            "usage": '\'{"input_tokens": 12, "output_tokens": 30, "total_tokens": 42}\'',
            "created_by_id": "%s",
            "created_at": "t",
            "started_at": "t + interval '50 ms'",
            "finished_at": "t + interval '1500 ms'",
            "deadline_at": "t + interval '1 hour'",
        },
        "generate_series(%s, %s) AS i, LATERAL (SELECT %s::timestamptz + i * %s AS t) AS at",
        [workspace.id, flow_ids, version_ids, user.id],
        [start, end, base, STEP],
    )
    runs = "flows_run r WHERE r.workspace_id = %s AND r.created_at > %s AND r.created_at <= %s"
    window = [workspace.id, base + STEP * (start - 1), base + STEP * end]
    insert_select(
        Usage,
        {
            "workspace_id": "r.workspace_id",
            "model_slug": "'bench-model'",
            "flow_id": "r.flow_id",
            "run_id": "r.id",
            "user_id": "r.created_by_id",
            "source": "'flow'",
            "input_tokens": "12",
            "output_tokens": "30",
            "latency_ms": "1400",
            "ttft_ms": "120 + (abs(hashtext(r.id::text)) % 200)",
            "cost": "0.000042",
            "created_at": "r.created_at + interval '1400 ms'",
        },
        runs,
        [],
        window,
    )
    conversation = Conversation.objects.filter(workspace=workspace).first()
    if conversation is None:
        conversation = Conversation.objects.create(
            workspace=workspace, flow=flows[0], end_user="visitor"
        )
    insert_select(
        Message,
        {
            "conversation_id": "%s",
            "role": "'assistant'",
            "text": "r.outputs ->> 'text'",
            "run_id": "r.id",
            "settled": "true",
            "feedback": "CASE WHEN abs(hashtext(r.id::text)) % 3 = 0 THEN -1 ELSE 1 END",
            "created_at": "r.finished_at",
        },
        runs + " AND abs(hashtext(r.id::text)) % 50 = 0",
        [conversation.id],
        window,
    )


def grow(workspace, user, flows, have: int, size: int, base) -> None:
    began = time.perf_counter()
    for start in range(have + 1, size + 1, BATCH):
        fill(workspace, user, flows, start, min(start + BATCH - 1, size), base)
    print(f"filled runs={size} in_s={time.perf_counter() - began:.1f}", flush=True)


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in STATS_TABLES:
            cursor.execute(f"ANALYZE {table}")


def cases(workspace, user, flows) -> dict[str, Callable[[], int]]:
    """Each case: a page of the list as the page reads it; returns its number of rows."""
    from flows.models import Run
    from observe.selectors import Cursor, RunFilters, runs_filtered, runs_page

    def page(filters: RunFilters, after: Cursor | None = None) -> Callable[[], int]:
        def read() -> int:
            runs = runs_filtered(user, workspace.id, filters)
            return len(runs_page(runs, after=after, search=filters.q).rows)

        return read

    total = Run.objects.filter(workspace=workspace).count()
    middle = Run.objects.filter(workspace=workspace).order_by("-created_at", "-id")[total // 2]
    return {
        "first": page(RunFilters()),
        "deep": page(RunFilters(), Cursor(created_at=middle.created_at, id=middle.id)),
        "filtered": page(RunFilters(status="failed", flow_ids=(flows[0].id,))),
        "search_common": page(RunFilters(q=COMMON_WORD)),
        "search_rare": page(RunFilters(q=RARE_WORD)),
    }


def scrapes() -> dict[str, Callable[[], int]]:
    """A scrape of ``/metrics`` as its view renders it (returns the body's length): as every
    scrape finds it (the totals' state kept in Redis by the one before), and as the first one
    does (no state: the tables counted in full, once)."""
    from prometheus_client import generate_latest

    from observe.metric_totals import STATE_KEY
    from observe.metrics import metrics_registry
    from studio import redis_client

    def scrape() -> int:
        return len(generate_latest(metrics_registry()))

    def first_scrape() -> int:
        redis_client.client().delete(STATE_KEY)
        return scrape()

    return {"metrics_scrape": scrape, "metrics_first_scrape": first_scrape}


def explain(workspace, user, flows, stats: str) -> None:
    """The plan of each case's runs queries, as PostgreSQL ran them: the searches' too (every
    query they make)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from observe.selectors import RunFilters, runs_filtered, runs_page

    for name, filters in {
        "first": RunFilters(),
        "filtered": RunFilters(status="failed", flow_ids=(flows[0].id,)),
    }.items():
        runs = runs_filtered(user, workspace.id, filters)[:51]
        print(f"--- {name} stats={stats}\n{runs.explain(analyze=True)}", flush=True)
    for name, word in (("search_common", COMMON_WORD), ("search_rare", RARE_WORD)):
        runs = runs_filtered(user, workspace.id, RunFilters(q=word))
        with CaptureQueriesContext(connection) as queries:
            runs_page(runs, after=None, search=word)
        for query in queries.captured_queries:
            if 'FROM "flows_run"' not in query["sql"].split(" WHERE ")[0]:
                continue  # the page's usage and feedback lookups
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN ANALYZE " + query["sql"])
                plan = "\n".join(row[0] for row in cursor.fetchall())
            print(f"--- {name} stats={stats}\n{plan}", flush=True)


def measure(
    size: int, named: dict[str, Callable[[], int]], queries: int, stats: str = "fresh"
) -> list[str]:
    lines = []
    for name, case in named.items():
        rows = case()  # warm-up
        times = []
        for _ in range(queries):
            began = time.perf_counter()
            case()
            times.append((time.perf_counter() - began) * 1000)
        lines.append(
            f"{'metrics' if name.startswith('metrics') else 'runs_list'} runs={size} "
            f"case={name} stats={stats} rows={rows} "
            f"p50_ms={percentile(times, 50):.2f} p95_ms={percentile(times, 95):.2f}"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10k runs, 5 queries")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    args = parser.parse_args()
    sizes = [10_000] if args.quick else [int(size) for size in args.sizes.split(",")]
    queries = 5 if args.quick else args.queries
    started, redis = start_database()
    try:
        import django

        django.setup()
        from django.utils import timezone

        workspace, user, flows = fresh_workspace()
        base = timezone.now() - STEP * max(sizes)
        have, table = 0, []
        for size in sorted(sizes):
            grow(workspace, user, flows, have, size, base)
            have = size
            named = cases(workspace, user, flows)
            searches = {name: case for name, case in named.items() if name.startswith("search")}
            if args.explain:
                explain(workspace, user, flows, "stale")
            table += measure(size, searches, queries, "stale")
            analyze()
            if args.explain:
                explain(workspace, user, flows, "fresh")
            table += measure(size, named, queries)
            table += measure(size, scrapes(), queries)
        print("\n".join(["", "runs list, one page of 50; /metrics, one scrape (ms):", *table]))
    finally:
        if started:
            from django.db import connections

            connections.close_all()
            embedded.postgres_stop()
        launch.stop(redis)


if __name__ == "__main__":
    main()
