"""One process follows many runs' event logs at once: each waiting follower holds a Redis
connection, and the pool must not refuse the 101st (redis-py's default limit)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from studio import events

FOLLOWERS = 150


async def _first_event(run_id) -> dict:
    async for event in events.follow(run_id, 0, idle_s=5):
        if event is not None:
            return event
    raise AssertionError("the log ended without an event")


@pytest.mark.asyncio
async def test_a_process_follows_more_runs_at_once_than_a_default_pool_holds():
    run_ids = [uuid.uuid4() for _ in range(FOLLOWERS)]
    followers = [asyncio.create_task(_first_event(run_id)) for run_id in run_ids]
    await asyncio.sleep(1)  # every follower is waiting in its XREAD BLOCK
    for run_id in run_ids:
        await events.publish(run_id, "run.finished", data={"outputs": {}})

    received = await asyncio.wait_for(asyncio.gather(*followers), timeout=30)

    assert [event["run"] for event in received] == [str(run_id) for run_id in run_ids]
    assert all(event["seq"] == 1 for event in received)
