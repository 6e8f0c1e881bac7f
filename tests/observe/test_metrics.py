"""``/metrics``: behind a bearer token, parseable by the Prometheus client, counting real runs."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flows.models import RunSource, RunStatus
from flows.services import run_create
from studio import redis_client
from tests.flows.helpers import wait_for_run
from workers import queues

TOKEN = "scrape-me-0123456789"


@pytest.fixture
def metrics_on(settings):
    settings.STUDIO_METRICS_TOKEN = TOKEN


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
