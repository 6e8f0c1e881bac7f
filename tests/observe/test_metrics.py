"""``/metrics``: behind a bearer token, parseable by the Prometheus client, counting real runs;
its all-time totals counted once for settled rows and kept in Redis (``observe.metric_totals``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from catalog.models import Usage
from flows.models import Run, RunSource, RunStatus
from flows.services import run_create
from observe import metric_totals
from studio import redis_client
from tests.flows.helpers import wait_for_run
from workers import queues

TOKEN = "scrape-me-0123456789"


@pytest.fixture
def metrics_on(settings):
    settings.STUDIO_METRICS_TOKEN = TOKEN
    # Counts kept by another test's scrape are of rows that test's transaction rolled back.
    redis_client.client().delete(metric_totals.STATE_KEY)
    yield
    redis_client.client().delete(metric_totals.STATE_KEY)


def samples(body: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.django_db
def test_metrics_do_not_exist_without_a_token_set(client):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.django_db
def test_metrics_need_the_token(client, metrics_on):
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


@pytest.mark.django_db
def test_a_signed_in_owner_without_the_token_is_refused(client, metrics_on, owner):
    client.force_login(owner)
    assert client.get("/metrics").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_metrics_count_a_run_through_the_worker_and_the_queues(
    client, metrics_on, worker, echo_model, make_flow
):
    flow = make_flow(echo_model)
    run = run_create(
        flow=flow, version=flow.published_version, inputs={"message": "a b c"}, source=RunSource.API
    )
    assert wait_for_run(run.id).status == RunStatus.SUCCEEDED
    # Three messages wait in a queue no worker serves (a GPU pool's).
    redis = redis_client.client()
    redis.delete("gpu.test")
    redis.sadd("_kombu.binding.celery", "gpu.test\x06\x16\x06\x16gpu.test")
    redis.rpush("gpu.test", "m1", "m2", "m3")
    try:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    finally:
        redis.delete("gpu.test")
        redis.srem("_kombu.binding.celery", "gpu.test\x06\x16\x06\x16gpu.test")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response.content.decode())
    assert found[("studio_runs_total", (("status", "succeeded"),))] == 1
    assert found[("studio_runs_total", (("status", "failed"),))] == 0
    assert found[("studio_model_tokens_total", (("direction", "output"),))] == 3
    assert found[("studio_model_call_errors_total", ())] == 0
    assert found[("studio_queue_depth", (("queue", "gpu.test"),))] == 3
    for name in queues.default_queues():
        assert ("studio_queue_depth", (("queue", name),)) in found
    assert found[("studio_run_duration_seconds", (("quantile", "0.5"),))] > 0
    assert found[("studio_model_tokens_per_second", (("model", "echo"),))] > 0
    assert ("studio_engine_load", (("model", "echo"),)) in found


def _scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return samples(response.content.decode())


def _runs(found) -> dict[str, float]:
    return {s: found[("studio_runs_total", (("status", s),))] for s in RunStatus.values}


def _run(flow, status: str, deadline_in: timedelta, **fields) -> Run:
    return Run.objects.create(
        workspace=flow.workspace,
        flow=flow,
        flow_version=flow.published_version,
        status=status,
        deadline_at=timezone.now() + deadline_in,
        **fields,
    )


def _usage(workspace, *, ago: timedelta, tokens: int, ok: bool = True) -> None:
    row = Usage.objects.create(
        workspace=workspace, model_slug="echo", input_tokens=tokens, output_tokens=2 * tokens, ok=ok
    )
    Usage.objects.filter(id=row.id).update(created_at=timezone.now() - ago)


@pytest.mark.django_db
def test_totals_count_settled_rows_once_and_recent_ones_at_each_scrape(
    client, metrics_on, make_flow, echo_model, workspace
):
    flow = make_flow(echo_model)
    hour = timedelta(hours=1)
    for _ in range(3):
        _run(flow, RunStatus.SUCCEEDED, -3 * hour)  # long over: settled
    _run(flow, RunStatus.FAILED, -2 * hour)
    overdue = _run(flow, RunStatus.RUNNING, -hour)  # the sweeper has not failed it yet
    _run(flow, RunStatus.SUCCEEDED, -0.5 * hour)  # after the overdue one: not settled yet
    _run(flow, RunStatus.QUEUED, hour)
    _usage(workspace, ago=2 * hour, tokens=10)
    _usage(workspace, ago=2 * hour, tokens=0, ok=False)
    _usage(workspace, ago=timedelta(seconds=5), tokens=1)

    first = _scrape(client)

    assert _runs(first) == {
        "queued": 1, "running": 1, "waiting": 0, "succeeded": 4, "failed": 1
    }  # fmt: skip
    assert first[("studio_model_tokens_total", (("direction", "input"),))] == 11
    assert first[("studio_model_tokens_total", (("direction", "output"),))] == 22
    assert first[("studio_model_call_errors_total", ())] == 1
    # Kept: the runs up to the overdue one's deadline (not the later ones), the older usage.
    kept = metric_totals._load()
    assert kept.runs["succeeded"] == 3 and kept.runs["failed"] == 1
    assert kept.runs_until < overdue.deadline_at
    assert (kept.input_tokens, kept.errors) == (10, 1)

    # The sweeper fails the overdue run; another run and call arrive. Nothing counts twice.
    Run.objects.filter(id=overdue.id).update(status=RunStatus.FAILED)
    _run(flow, RunStatus.SUCCEEDED, timedelta(minutes=5))
    _usage(workspace, ago=timedelta(seconds=1), tokens=100)
    for _ in range(2):
        again = _scrape(client)
        assert _runs(again) == {
            "queued": 1, "running": 0, "waiting": 0, "succeeded": 5, "failed": 2
        }  # fmt: skip
        assert again[("studio_model_tokens_total", (("direction", "input"),))] == 111
    kept = metric_totals._load()
    assert kept.runs["failed"] == 2 and kept.runs["succeeded"] == 4  # now settled up to now


@pytest.mark.django_db
def test_a_lost_or_foreign_state_is_counted_afresh(client, metrics_on, make_flow, echo_model):
    flow = make_flow(echo_model)
    _run(flow, RunStatus.SUCCEEDED, -timedelta(hours=2))
    redis_client.client().set(metric_totals.STATE_KEY, b"not json {")

    assert _runs(_scrape(client))["succeeded"] == 1
    redis_client.client().delete(metric_totals.STATE_KEY)
    assert _runs(_scrape(client))["succeeded"] == 1


@pytest.mark.django_db
def test_duration_quantiles_count_runs_that_ended_in_the_window_only(
    client, metrics_on, make_flow, echo_model, settings
):
    settings.STUDIO_METRICS_WINDOW_S = 300
    flow = make_flow(echo_model)
    now = timezone.now()
    # Ended a minute ago after 4 s; swept late, 10 min after its deadline, after 8 s: both in
    # the window.
    _run(flow, RunStatus.SUCCEEDED, timedelta(minutes=9), finished_at=now - timedelta(minutes=1))
    swept = _run(
        flow, RunStatus.FAILED, -timedelta(minutes=10), finished_at=now - timedelta(seconds=30)
    )
    # Ended an hour ago after 100 s: out of the window.
    old = _run(
        flow, RunStatus.SUCCEEDED, -timedelta(minutes=50), finished_at=now - timedelta(hours=1)
    )
    Run.objects.update(created_at=F("finished_at") - timedelta(seconds=4))
    Run.objects.filter(id=old.id).update(created_at=F("finished_at") - timedelta(seconds=100))
    Run.objects.filter(id=swept.id).update(created_at=F("finished_at") - timedelta(seconds=8))

    found = _scrape(client)

    assert found[("studio_run_duration_seconds", (("quantile", "0.5"),))] == pytest.approx(6)
    assert found[("studio_run_duration_seconds", (("quantile", "0.99"),))] == pytest.approx(7.96)
