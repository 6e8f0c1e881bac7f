"""Celery tasks: thin, take ids, call the executor. Idempotency lives in the executor's claims."""

from __future__ import annotations

import time

from celery import shared_task
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404

from catalog.access import access_embedding_model_for_task
from catalog.models import Model
from catalog.services import embeddings, playground
from evals import services as eval_services
from flows import services
from flows.access import access_run_check, access_run_for_task
from flows.models import NodeResult
from flows.runtime import executor, node_execution
from knowledge.access import access_document_for_task, access_knowledge_base_for_task
from knowledge.retrieval import RetrievalOptions, aretrieve
from knowledge.services import chunks, ingestion, queries
from observe.alerts import services as alert_services
from studio import access
from workers import resident, served
from workspaces.access import membership

# How long nodes kept on one thread go on without checking the starter's access again.
RECHECK_S = 1.0


def _allowed(run_id: str) -> bool:
    """Whoever started the run may still run its flow; else the run fails with the reason."""
    try:
        access_run_for_task(run_id)
    except Http404:
        return False  # the run (or its flow) was deleted: nothing to do
    except PermissionDenied as exc:
        services.run_fail(run_id=run_id, reason=f"permission revoked: {exc}")
        return False
    return True


# No time limits on these two: a pass spends at most STUDIO_RUN_PASS_S on inline nodes, and a node
# running here gives up at its own timeout or the run's deadline.
@shared_task(name="workers.tasks.advance_run")
def advance_run(run_id: str) -> None:
    # The access check is made on the run as the pass locks it: one read of the run, not two.
    _run_here(run_id, executor.run_advance(run_id, served.queues(), check=access_run_check))


@shared_task(name="workers.tasks.execute_node")
def execute_node(run_id: str, node_id: str) -> None:
    if _allowed(run_id):
        claimed = node_execution.node_claim(run_id, node_id)
        _run_here(run_id, [claimed] if claimed else [])


def _run_here(run_id: str, claimed: list[NodeResult]) -> None:
    """Run the claimed nodes, and the nodes the executor keeps for this worker after them, on
    this thread (one hop per run). Access is checked again before kept nodes start once
    ``RECHECK_S`` have passed since the last check."""
    if not claimed:
        return
    checked = time.monotonic()

    def may_go_on() -> bool:
        nonlocal checked
        if time.monotonic() - checked <= RECHECK_S:
            return True
        checked = time.monotonic()
        return _allowed(run_id)

    node_execution.node_run(claimed, resident.runtime(), served.queues(), may_go_on)


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
        or membership(user, job.workspace_id) is None
        or not access.has_perm(user, model, "use")
    ):
        reason = "permission revoked: you may no longer use this model"
        playground.playground_fail(job=job, reason=reason)
        return
    runtime = resident.runtime()
    coro = playground.playground_agenerate(job=job, model=model, engine_for=runtime.engine_for)
    # The coroutine ends itself at its own timeout; this one only guards against a stuck loop.
    runtime.submit(coro).result(timeout=playground.GENERATE_TIMEOUT_S + 30)


@shared_task(name="workers.tasks.ingest_document", time_limit=3600, soft_time_limit=3540)
def ingest_document(document_id: int) -> None:
    """Parse, chunk and embed a queued document (idempotent: the claim takes it once)."""
    try:
        access_document_for_task(document_id)
    except Http404:
        return  # deleted meanwhile
    except PermissionDenied as exc:
        ingestion.document_refuse(document_id=document_id, reason=f"permission revoked: {exc}")
        return
    ingestion.document_ingest(document_id=document_id, embed=_embed)


def _embed(model: Model, texts: list[str]) -> list[list[float]]:
    """Vectors of ``texts`` from the model's engine, resident in this worker process."""
    return resident.runtime().embed(model, texts)


@shared_task(name="workers.tasks.embed_chunk", time_limit=300, soft_time_limit=290)
def embed_chunk(chunk_id: int) -> None:
    """Embed a chunk whose text was edited (a no-op if it is gone or was edited again)."""
    chunks.chunk_embed(chunk_id=chunk_id, embed=_embed)


@shared_task(name="workers.tasks.requeue_stale_ingestions", time_limit=60)
def requeue_stale_ingestions() -> int:
    return ingestion.documents_requeue_stale()


@shared_task(name="workers.tasks.knowledge_query", time_limit=150, soft_time_limit=140)
def knowledge_query(job_id: str) -> None:
    """One retrieval asked for by the web process, if whoever asked may still use the base."""
    job = queries.query_claim(job_id)
    if job is None:
        return  # expired, or a repeated delivery
    try:
        base = access_knowledge_base_for_task(
            job.knowledge_base_id, user_id=job.user_id, api_key_id=job.api_key_id
        )
    except (Http404, PermissionDenied) as exc:
        queries.query_reply(job_id, error=str(exc) or "the knowledge base is gone")
        return
    runtime = resident.runtime()
    coro = aretrieve(
        knowledge_base=base,
        query=job.query,
        options=RetrievalOptions.model_validate(job.options),
        engine_for=runtime.engine_for,
        explain=job.explain,
    )
    try:
        result = runtime.submit(coro).result(timeout=120)
    except Exception as exc:  # the asker reads why; the worker goes on
        queries.query_reply(job_id, error=f"retrieval failed: {exc}")
        return
    queries.query_reply(job_id, result=result)


@shared_task(
    name="workers.tasks.catalog_embed",
    time_limit=embeddings.WAIT_S + 60,
    soft_time_limit=embeddings.WAIT_S + 45,
)
def catalog_embed(job_id: str) -> None:
    """Texts embedded for ``/v1/embeddings``, if the key may still embed with the model."""
    job = embeddings.embedding_claim(job_id)
    if job is None:
        return  # expired, or a repeated delivery
    try:
        model = access_embedding_model_for_task(job.model_id, job.api_key_id)
    except (Http404, PermissionDenied) as exc:
        embeddings.embedding_reply(job_id, error=str(exc) or "the model is gone")
        return
    runtime = resident.runtime()
    coro = embeddings.embedding_arun(job=job, model=model, engine_for=runtime.engine_for)
    runtime.submit(coro).result(timeout=embeddings.WAIT_S + 30)


@shared_task(
    name="workers.tasks.eval_run_tick",
    time_limit=eval_services.EVAL_TICK_LIMIT_S,
    soft_time_limit=eval_services.EVAL_TICK_LIMIT_S - 30,
)
def eval_run_tick(eval_run_id: int, tick: int) -> None:
    """One step of an evaluation run; it enqueues the next itself (``evals.services``)."""
    runtime = resident.runtime()
    eval_services.eval_run_tick(
        eval_run_id,
        tick,
        score=lambda coro: runtime.submit(coro).result(timeout=300),
        engine_for=runtime.engine_for,
    )


@shared_task(name="workers.tasks.resume_stale_evaluations", time_limit=60)
def resume_stale_evaluations() -> int:
    return eval_services.eval_runs_resume()


@shared_task(name="workers.tasks.check_alerts", time_limit=300)
def check_alerts() -> int:
    """The enabled alert rules checked, least recently checked first, for up to four minutes
    (beat, ``STUDIO_ALERT_INTERVAL_S``); a repeated or overlapping delivery notifies nothing
    twice (``observe.alerts.services``)."""
    return alert_services.alerts_check_all(deadline=time.monotonic() + 240)
