"""Celery tasks: thin, take ids, call the executor. Idempotency lives in the executor's claims."""

from __future__ import annotations

from celery import shared_task
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404

from catalog.models import Model
from catalog.services import playground
from flows import executor, services
from studio import access
from workers import resident


def _allowed(run_id: str) -> bool:
    """Whoever started the run may still run its flow; else the run fails with the reason."""
    try:
        access.access_run_for_task(run_id)
    except Http404:
        return False  # the run (or its flow) was deleted: nothing to do
    except PermissionDenied as exc:
        services.run_fail(run_id=run_id, reason=f"permission revoked: {exc}")
        return False
    return True


@shared_task(name="workers.tasks.advance_run", time_limit=120, soft_time_limit=110)
def advance_run(run_id: str) -> None:
    if _allowed(run_id):
        executor.run_advance(run_id)


# No time limit here: the executor enforces the run's own deadline while it waits.
@shared_task(name="workers.tasks.execute_node")
def execute_node(run_id: str, node_id: str) -> None:
    if _allowed(run_id):
        executor.node_execute(run_id, node_id, resident.runtime())


@shared_task(name="workers.tasks.reap_stale_runs", time_limit=60)
def reap_stale_runs() -> int:
    return services.runs_fail_stale()


@shared_task(
    name="workers.tasks.playground_generate",
    time_limit=playground.GENERATE_TIMEOUT_S + 60,
    soft_time_limit=playground.GENERATE_TIMEOUT_S + 45,
)
def playground_generate(stream_id: str) -> None:
    """One side of a playground comparison, if whoever asked may still use the model there."""
    job = playground.playground_claim(stream_id=stream_id)
    if job is None:
        return  # expired, or a repeated delivery
    model = Model.objects.filter(id=job.model_id).first()
    if model is None:
        playground.playground_fail(job=job, reason="the model was removed")
        return
    user = get_user_model().objects.filter(id=job.user_id, is_active=True).first()
    if (
        user is None
        or access.membership(user, job.workspace_id) is None
        or not access.has_perm(user, model, "use")
    ):
        reason = "permission revoked: you may no longer use this model"
        playground.playground_fail(job=job, reason=reason)
        return
    runtime = resident.runtime()
    coro = playground.playground_agenerate(job=job, model=model, engine_for=runtime.engine_for)
    # The coroutine ends itself at its own timeout; this one only guards against a stuck loop.
    runtime.submit(coro).result(timeout=playground.GENERATE_TIMEOUT_S + 30)
