"""Waiting on a run from an async view: the one place readers turn events into outcomes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from channels.db import database_sync_to_async

from flows.models import TERMINAL, Run
from flows.services import runs_fail_stale
from studio import events


async def run_events(run_id: Any, after: int = 0) -> AsyncIterator[dict | None]:
    """``events.follow`` for one run, ending it as failed if it is overdue or its worker died.

    Yields None on idle ticks (for keep-alives). Ends after the run's terminal event, or when
    the database says the run has ended even if its terminal event was lost.
    """
    async for batch in run_batches(run_id, after):
        if batch is None:
            yield None
            continue
        for entry in batch:
            yield entry.event


async def run_batches(run_id: Any, after: int = 0) -> AsyncIterator[list[events.Entry] | None]:
    """``run_events``, as the lists of ``events.Entry``s that were ready together (a WebSocket
    sends their ``frame``s, several in one message if its client asked for it)."""
    async for batch in events.follow_batches(run_id, after):
        if batch is None:
            status = await _stale_status(run_id)
            if status in TERMINAL:
                missed = await events.replay_entries(run_id, after)
                if missed:
                    yield missed
                return
        else:
            after = batch[-1].seq
        yield batch


# Off the process's one thread-sensitive thread: with many quiet streams these checks would
# queue there before every other socket's connect and access check.
@partial(database_sync_to_async, thread_sensitive=False)
def _stale_status(run_id: Any) -> str | None:
    """The run's status, once it has been failed if it is overdue or its worker died."""
    runs_fail_stale(run_id=run_id)
    return Run.objects.filter(id=run_id).values_list("status", flat=True).first()


async def run_wait(run: Run) -> Run:
    """``run`` (as its request started it, its flow and version with it) once it has ended,
    with what the run changed read again."""
    async for _ in run_events(run.id):
        pass
    await run.arefresh_from_db(fields=["status", "outputs", "usage", "error", "finished_at"])
    return run


def run_payload(run: Run) -> dict:
    return {
        "run_id": str(run.id),
        "flow": run.flow.slug,
        "version": run.flow_version.number if run.flow_version_id else None,
        "status": run.status,
        "outputs": run.outputs,
        "usage": run.usage,
        "error": run.error or None,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
