"""Small waits used by tests that watch other processes."""

from __future__ import annotations

import asyncio
import time

from flows.models import TERMINAL, Run
from studio import events


def wait_for_run(run_id, timeout: float = 60) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(id=run_id)
        if run.status in TERMINAL:
            return run
        time.sleep(0.05)
    raise AssertionError(
        f"run {run_id} still {Run.objects.get(id=run_id).status} after {timeout} s"
    )


def logged_events(run_id) -> list[dict]:
    return asyncio.run(events.replay(run_id))


def wait_for_event(run_id, type_: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in logged_events(run_id):
            if event["type"] == type_:
                return event
        time.sleep(0.05)
    raise AssertionError(f"no {type_} event for run {run_id} after {timeout} s")
