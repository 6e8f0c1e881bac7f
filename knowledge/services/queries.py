"""Retrieval asked for by the web process (the test page, the REST API), run on a worker.

The web process never loads a model: ``query_start`` writes a job to Redis (who asks, which
base, the query and options) and sends ``workers.tasks.knowledge_query`` to the base's retrieval
queue; the task re-checks access, retrieves on the worker's resident engines, and pushes the
result to the job's reply list, which ``query_wait`` blocks on.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from knowledge.models import KnowledgeBase
from knowledge.retrieval import Retrieval, RetrievalOptions
from knowledge.selectors import retrieval_queue
from studio import redis_client
from studio.celery import app

QUERY_TASK = "workers.tasks.knowledge_query"
JOB_TTL_S = 300
WAIT_S = 60.0


class QueryTimeout(Exception):
    """No worker answered in time."""


@dataclass(frozen=True)
class QueryJob:
    job_id: str
    knowledge_base_id: int
    query: str
    options: dict[str, Any]
    explain: bool
    user_id: int | None = None
    api_key_id: int | None = None


def _job_key(job_id: str) -> str:
    return f"studio:kbquery:{job_id}"


def _reply_key(job_id: str) -> str:
    return f"studio:kbquery:{job_id}:reply"


def query_start(
    *,
    knowledge_base: KnowledgeBase,
    query: str,
    options: RetrievalOptions,
    explain: bool = False,
    user=None,
    api_key=None,
) -> str:
    """Queue a retrieval; the caller has checked ``use`` on the base. Returns the job id."""
    job = QueryJob(
        job_id=uuid.uuid4().hex,
        knowledge_base_id=knowledge_base.id,
        query=query,
        options=options.model_dump(mode="json"),
        explain=explain,
        user_id=user.id if user is not None else None,
        api_key_id=api_key.id if api_key is not None else None,
    )
    redis_client.client().set(_job_key(job.job_id), json.dumps(job.__dict__), ex=JOB_TTL_S)
    app.send_task(QUERY_TASK, args=[job.job_id], queue=retrieval_queue(knowledge_base))
    return job.job_id


def query_claim(job_id: str) -> QueryJob | None:
    """The job, taken once (a repeated delivery finds nothing)."""
    raw = redis_client.client().getdel(_job_key(job_id))
    return QueryJob(**json.loads(raw)) if raw else None


def query_reply(job_id: str, *, result: Retrieval | None = None, error: str = "") -> None:
    payload = {"error": error} if error else {"result": retrieval_payload(result)}
    client = redis_client.client()
    client.rpush(_reply_key(job_id), json.dumps(payload))
    client.expire(_reply_key(job_id), JOB_TTL_S)


def query_wait(job_id: str, timeout: float = WAIT_S) -> dict[str, Any]:
    """The job's reply (``{"result": …}`` or ``{"error": …}``); QueryTimeout if none came."""
    found = redis_client.pop_reply(_reply_key(job_id), timeout)
    if found is None:
        raise QueryTimeout(
            f"no retrieval worker answered within {timeout:.0f} s; is a worker serving the "
            "retrieval queue?"
        )
    return json.loads(found)


def retrieval_payload(result: Retrieval | None) -> dict[str, Any]:
    if result is None:
        return {}
    return {
        "mode": result.mode,
        "reranked": result.reranked,
        "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
        "chunks": [c.as_dict() for c in result.citations],
        "stages": {name: [list(pair) for pair in hits] for name, hits in result.stages.items()},
    }
