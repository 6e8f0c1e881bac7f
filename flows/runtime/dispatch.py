"""Enqueueing the executor's tasks, by name: the tasks live in ``workers/tasks.py``."""

from __future__ import annotations

from typing import Any

from studio.celery import app

ADVANCE_RUN = "workers.tasks.advance_run"
EXECUTE_NODE = "workers.tasks.execute_node"


def advance(run_id: Any) -> None:
    app.send_task(ADVANCE_RUN, args=[str(run_id)])


def execute(run_id: Any, node_id: str, queue: str, countdown: float = 0) -> None:
    """Execute a node (or an instance of one, ``llm_1[3]``) on its queue, after ``countdown``
    seconds (a retry's backoff)."""
    options = {"countdown": countdown} if countdown else {}
    app.send_task(EXECUTE_NODE, args=[str(run_id), node_id], queue=queue, **options)
