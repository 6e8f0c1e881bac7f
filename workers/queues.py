"""Queue names and routing.

``flows`` runs the executor; engine nodes go to their engine's queue (``inference`` for the CPU
and echo engines); ``maintenance`` takes the periodic reapers; ``ingestion`` parses, chunks and
embeds documents; ``retrieval`` embeds queries, searches and reranks (knowledge nodes, the
retrieval test page, the retrieval API).

GPU queues: a vLLM catalog entry is served on ``gpu``, or on ``gpu.<name>`` when its engine
settings say so (``catalog/engines/vllm.py`` validates the name), so that each model can have its
own GPU workers. Nothing is routed to a GPU queue by task name: ``execute_node`` (and the compare
playground's ``playground_generate``) is sent with its queue named explicitly, the one that
``catalog.selectors.models.model_queue`` gives for the node's model. A GPU worker serves exactly
its model's queue, in one process with a thread pool, so that all its tasks feed one vLLM engine
that batches them (``workers/resident.py``)::

    celery -A studio worker -Q gpu -P threads -c 64
    celery -A studio worker -Q gpu.llama-70b -P threads -c 128 -n llama70b@%h

``-c`` bounds how many requests the engine batches at once; keep it at or above the entry's
``max_num_seqs``. Each thread holds a database connection while its node runs, so PostgreSQL's
``max_connections`` must cover every worker's threads plus the web server's open streams.

The all-in-one worker (``default_queues``) serves no GPU queue: a CPU-only install never loads
vLLM.
"""

from __future__ import annotations

from typing import Any

FLOWS = "flows"
INFERENCE = "inference"
MAINTENANCE = "maintenance"
# Knowledge bases: parsing, chunking and embedding documents; query embedding, search, reranking.
INGESTION = "ingestion"
RETRIEVAL = "retrieval"

_ROUTES = {
    "workers.tasks.advance_run": FLOWS,
    "workers.tasks.reap_stale_runs": MAINTENANCE,
    "workers.tasks.requeue_stale_ingestions": MAINTENANCE,
}


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any):
    """Celery router; ``execute_node`` is sent with its queue named explicitly."""
    queue = _ROUTES.get(name)
    return {"queue": queue} if queue else None


def default_queues() -> list[str]:
    """The queues one all-in-one worker serves (``make up``, the test suite)."""
    return [FLOWS, INFERENCE, MAINTENANCE, INGESTION, RETRIEVAL]
