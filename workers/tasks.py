"""Celery tasks: thin, take ids, call the executor. Idempotency lives in the executor's claims."""

from __future__ import annotations

from celery import shared_task

from flows import executor, services
from workers import resident


@shared_task(name="workers.tasks.advance_run", time_limit=120, soft_time_limit=110)
def advance_run(run_id: str) -> None:
    executor.run_advance(run_id)


# No time limit here: the executor enforces the run's own deadline while it waits.
@shared_task(name="workers.tasks.execute_node")
def execute_node(run_id: str, node_id: str) -> None:
    executor.node_execute(run_id, node_id, resident.runtime())


@shared_task(name="workers.tasks.reap_stale_runs", time_limit=60)
def reap_stale_runs() -> int:
    return services.runs_fail_stale()
