"""The Prometheus metrics: read from PostgreSQL and Redis when ``/metrics`` is scraped.

Workers are separate processes (prefork children, thread pools, other machines), so nothing is
counted in process memory: every figure is read at scrape time from what the workers already
write, the runs and usage rows and the broker's queues. Any web process answers for all of
them, a worker restart loses nothing, and the hot paths carry no counting code. Recent figures
(durations, tokens per second, engine load) cover the last ``STUDIO_METRICS_WINDOW_S`` seconds;
counts by status, tokens and errors cover every row, kept cheap by ``observe.metric_totals``.
Every query is bounded by an index, so a scrape costs about the same at a million runs as at a
thousand (``bench/observe.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from catalog.models import Usage
from flows.models import TERMINAL, Run, RunStatus
from observe.metric_totals import Totals, totals
from studio import redis_client
from workers.queues import default_queues

# Kombu keeps a queue's messages in a Redis list named after it; with priorities, in three more
# lists whose names add a separator and the priority step.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
# Where kombu records which queues are bound to Celery's exchange (GPU queues show up there).
_BINDINGS = "_kombu.binding.celery"


def queue_names() -> list[str]:
    """The all-in-one worker's queues and every queue a task was ever routed to."""
    names = set(default_queues())
    for member in redis_client.client().smembers(_BINDINGS):
        text = member.decode() if isinstance(member, bytes) else member
        queue = text.split(_PRIORITY_SEP)[-1]
        if queue and not queue.endswith(".pidbox") and not queue.startswith("celery"):
            names.add(queue)
    return sorted(names)


def queue_depths() -> dict[str, int]:
    """Messages waiting in each queue (LLEN of its lists), in one round trip."""
    names = queue_names()
    pipe = redis_client.client().pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
        for step in _PRIORITY_STEPS:
            pipe.llen(f"{name}{_PRIORITY_SEP}{step}")
    lengths = pipe.execute()
    per = 1 + len(_PRIORITY_STEPS)
    return {name: sum(lengths[i * per : (i + 1) * per]) for i, name in enumerate(names)}


class StudioCollector(Collector):
    """Reads the figures on each ``collect`` (one scrape): a few aggregate queries."""

    def collect(self) -> Iterator:
        yield from self._queues()
        counted = totals()
        yield from self._runs(counted)
        yield from self._models(counted)

    def _queues(self) -> Iterator:
        depth = GaugeMetricFamily(
            "studio_queue_depth", "Tasks waiting in a Celery queue.", labels=["queue"]
        )
        for name, length in queue_depths().items():
            depth.add_metric([name], length)
        yield depth

    def _runs(self, counted: Totals) -> Iterator:
        runs = CounterMetricFamily("studio_runs", "Flow runs, by status.", labels=["status"])
        for status in RunStatus.values:
            runs.add_metric([status], counted.runs.get(status, 0))
        yield runs
        window = settings.STUDIO_METRICS_WINDOW_S
        quantiles = GaugeMetricFamily(
            "studio_run_duration_seconds",
            f"Duration of the runs finished in the last {window:g} s, from creation to end.",
            labels=["quantile"],
        )
        for quantile, seconds in _run_duration_quantiles(window).items():
            quantiles.add_metric([str(quantile)], seconds)
        yield quantiles

    def _models(self, counted: Totals) -> Iterator:
        window = settings.STUDIO_METRICS_WINDOW_S
        since = timezone.now() - timedelta(seconds=window)
        tokens = CounterMetricFamily(
            "studio_model_tokens", "Tokens of every model call.", labels=["direction"]
        )
        tokens.add_metric(["input"], counted.input_tokens)
        tokens.add_metric(["output"], counted.output_tokens)
        yield tokens
        yield CounterMetricFamily(
            "studio_model_call_errors", "Model calls that failed.", value=counted.errors
        )
        recent = (
            Usage.objects.filter(created_at__gte=since, cache_hit=False)
            .values_list("model_slug")
            .annotate(o=Sum("output_tokens"), ms=Sum("latency_ms"), calls=Count("id"))
            .order_by()
        )
        speed = GaugeMetricFamily(
            "studio_model_tokens_per_second",
            f"Output tokens per second of model time, over the last {window:g} s.",
            labels=["model"],
        )
        load = GaugeMetricFamily(
            "studio_engine_load",
            f"Calls a model served at once on average over the last {window:g} s.",
            labels=["model"],
        )
        for slug, output_tokens, ms, _calls in recent:
            seconds = (ms or 0) / 1000
            speed.add_metric([slug], (output_tokens or 0) / seconds if seconds else 0.0)
            load.add_metric([slug], seconds / window)
        yield speed
        yield load


# How long after its deadline a run may still end (failed by the sweeper, every few seconds):
# past it, the sweeper was down, and such a run is left out of the duration quantiles.
SWEEP_SLACK = timedelta(minutes=15)


def _run_duration_quantiles(window: float) -> dict[float, float]:
    """Quantiles of the durations of the runs that ended in the last ``window`` seconds. A run
    ends before its deadline or, failed by the sweeper, just after it: the deadline bounds the
    runs to read through the ``run_status_deadline`` index (``finished_at`` has none)."""
    quantiles = (0.5, 0.95, 0.99)
    since = timezone.now() - timedelta(seconds=window)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(%s::float8[]) WITHIN GROUP "
            "(ORDER BY extract(epoch FROM finished_at - created_at)) "
            f"FROM {Run._meta.db_table} "
            "WHERE status = ANY(%s) AND deadline_at >= %s AND finished_at >= %s",
            [list(quantiles), [s.value for s in TERMINAL], since - SWEEP_SLACK, since],
        )
        values = cursor.fetchone()[0]
    if not values:
        return {}
    return dict(zip(quantiles, values, strict=True))


def metrics_registry() -> CollectorRegistry:
    """A registry of the studio's metrics; the default one adds this process's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StudioCollector())
    return registry
