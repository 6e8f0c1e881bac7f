"""Queue names and routing.

``flows`` runs the executor; engine nodes go to their engine's queue (``inference`` for the CPU
and echo engines); ``maintenance`` takes the periodic reaper.
"""

from __future__ import annotations

from typing import Any

FLOWS = "flows"
INFERENCE = "inference"
MAINTENANCE = "maintenance"

_ROUTES = {
    "workers.tasks.advance_run": FLOWS,
    "workers.tasks.reap_stale_runs": MAINTENANCE,
}


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any):
    """Celery router; ``execute_node`` is sent with its queue named explicitly."""
    queue = _ROUTES.get(name)
    return {"queue": queue} if queue else None


def default_queues() -> list[str]:
    """The queues one all-in-one worker serves (``make up``, the test suite)."""
    return [FLOWS, INFERENCE, MAINTENANCE]
