"""The shared event reader: every follower of a process gets each of its run's events once, in
order, whether it came first or late, while Redis drops the reader's connection, or while it is
too slow to keep up; one blocked read serves them all, and it stops when the last one leaves."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from studio import event_hub, events, redis_client

HUB_NAME = "studio-event-hub"


def _run() -> str:
    return f"test-hub-{uuid.uuid4()}"


async def _seqs(run_id, after: int = 0, idle_s: float = 5.0) -> list[int]:
    return [e["seq"] async for e in events.follow(run_id, after, idle_s) if e is not None]


async def _publish(run_id, n: int, pause_s: float = 0.0) -> None:
    for i in range(n):
        await events.publish(run_id, events.TOKEN, "llm_1", {"text": f"t{i}"})
        if pause_s:
            await asyncio.sleep(pause_s)


async def _finish(run_id) -> None:
    await events.publish(run_id, events.RUN_FINISHED, data={"outputs": {}})


def _hub_connections() -> list[dict]:
    return [c for c in redis_client.client().client_list() if c.get("name") == HUB_NAME]


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
async def _hub_stopped():
    """Each test ends with its loop's hub stopped: a reader left blocked in a closed loop would
    keep its connection, and other tests count the hubs' connections."""
    yield
    await _until(lambda: event_hub.hub()._reader is None, timeout=10)


async def test_many_followers_of_one_run_each_get_every_event_once():
    run_id = _run()
    followers = [asyncio.create_task(_seqs(run_id)) for _ in range(50)]
    await _until(lambda: event_hub.hub().followed == 1)
    await _publish(run_id, 100)
    await _finish(run_id)

    received = await asyncio.wait_for(asyncio.gather(*followers), timeout=30)

    assert all(seqs == list(range(1, 102)) for seqs in received)


async def test_followers_of_many_runs_share_one_read():
    run_ids = [_run() for _ in range(200)]
    followers = [asyncio.create_task(_seqs(run_id)) for run_id in run_ids]
    await _until(lambda: event_hub.hub().followed == len(run_ids))
    await _until(lambda: bool(_hub_connections()))
    assert len(_hub_connections()) == 1  # not one connection per follower
    for _ in range(3):
        await asyncio.gather(*(_publish(run_id, 1) for run_id in run_ids))
    await asyncio.gather(*(_finish(run_id) for run_id in run_ids))

    received = await asyncio.wait_for(asyncio.gather(*followers), timeout=30)

    assert all(seqs == [1, 2, 3, 4] for seqs in received)


async def test_a_late_joiner_replays_what_it_missed_then_follows_without_a_gap_or_a_repeat():
    """Joiners arrive while the run's events stream to an earlier follower: each gets the whole
    log from its ``after``, however its replay and the hub's reads interleave."""
    run_id = _run()
    first = asyncio.create_task(_seqs(run_id))
    await _until(lambda: event_hub.hub().followed == 1)
    producer = asyncio.create_task(_publish(run_id, 300, pause_s=0.001))
    joiners = []
    for k in range(30):
        await asyncio.sleep(0.01)
        joiners.append((k, asyncio.create_task(_seqs(run_id, after=k))))
    await producer
    await _finish(run_id)

    assert await asyncio.wait_for(first, timeout=30) == list(range(1, 302))
    for after, joiner in joiners:
        assert await asyncio.wait_for(joiner, timeout=30) == list(range(after + 1, 302))


async def test_a_follower_ahead_of_the_hub_gets_only_what_follows_its_position():
    run_id = _run()
    await _publish(run_id, 5)
    behind = asyncio.create_task(_seqs(run_id, after=0))
    ahead = asyncio.create_task(_seqs(run_id, after=3))
    await _finish(run_id)

    assert await asyncio.wait_for(behind, timeout=10) == [1, 2, 3, 4, 5, 6]
    assert await asyncio.wait_for(ahead, timeout=10) == [4, 5, 6]


async def test_a_new_follower_does_not_wait_for_the_blocked_read_to_time_out():
    quiet = asyncio.create_task(_seqs(_run()))
    await _until(lambda: event_hub.hub().followed == 1)
    await asyncio.sleep(0.2)  # the hub is blocked reading the quiet run alone
    run_id = _run()
    follower = asyncio.create_task(_seqs(run_id))
    await _until(lambda: event_hub.hub().followed == 2)
    started = time.monotonic()
    await _finish(run_id)

    assert await asyncio.wait_for(follower, timeout=10) == [1]
    assert time.monotonic() - started < event_hub.BLOCK_MS / 1000 / 2
    quiet.cancel()
    await _until(lambda: event_hub.hub()._reader is None)


async def test_a_dropped_connection_loses_and_repeats_nothing():
    killed = {connection["id"] for connection in _hub_connections()}  # other tests' hubs
    before = len(killed)
    run_ids = [_run() for _ in range(5)]
    followers = [asyncio.create_task(_seqs(run_id)) for run_id in run_ids]
    await _until(lambda: event_hub.hub().followed == len(run_ids))
    producers = [asyncio.create_task(_publish(r, 200, pause_s=0.002)) for r in run_ids]
    for _ in range(3):
        await asyncio.sleep(0.1)
        await _until(lambda: any(c["id"] not in killed for c in _hub_connections()))
        for connection in _hub_connections():
            if connection["id"] not in killed:
                redis_client.client().client_kill_filter(_id=connection["id"])
                killed.add(connection["id"])
    await asyncio.gather(*producers)
    await asyncio.gather(*(_finish(run_id) for run_id in run_ids))

    received = await asyncio.wait_for(asyncio.gather(*followers), timeout=30)

    assert len(killed) - before == 3  # the hub came back on a new connection each time
    assert all(seqs == list(range(1, 202)) for seqs in received)


async def test_a_follower_that_falls_behind_reads_the_gap_from_the_log(monkeypatch):
    monkeypatch.setattr(event_hub, "BACKLOG_MAX", 10)
    run_id = _run()
    key = f"studio:run:{run_id}:log"
    with event_hub.hub().subscribe(key, 0) as subscription:
        await _publish(run_id, 100)
        await _finish(run_id)
        await asyncio.sleep(0.3)  # the hub hands out far more than the follower's backlog holds
        assert subscription._pending_count <= 10
        assert subscription._read_to > 0  # it dropped what it was given: the log has it
        seqs = []
        while not seqs or seqs[-1] < 101:
            seqs += [seq for seq, _ in await subscription.next(idle_s=5)]

    assert seqs == list(range(1, 102))


async def test_the_follow_ends_at_the_terminal_event():
    run_id = _run()
    await _publish(run_id, 2)
    await _finish(run_id)
    await _publish(run_id, 2)  # after the end: never read

    assert await asyncio.wait_for(_seqs(run_id), timeout=10) == [1, 2, 3]
    await _until(lambda: event_hub.hub().followed == 0)


async def test_an_idle_follower_hears_none_then_the_events():
    run_id = _run()
    stream = events.follow(run_id, 0, idle_s=0.2)
    started = time.monotonic()
    assert await anext(stream) is None
    assert 0.15 < time.monotonic() - started < 2
    await _finish(run_id)
    event = await anext(stream)
    assert (event["seq"], event["type"]) == (1, events.RUN_FINISHED)
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_a_cancelled_follower_leaves_and_the_hub_stops_with_the_last_one():
    kept, cancelled = _run(), _run()
    keeper = asyncio.create_task(_seqs(kept))
    leaver = asyncio.create_task(_seqs(cancelled))
    await _until(lambda: event_hub.hub().followed == 2)
    leaver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaver
    assert event_hub.hub().followed == 1
    await _finish(kept)
    assert await asyncio.wait_for(keeper, timeout=10) == [1]

    assert event_hub.hub().followed == 0
    await _until(lambda: event_hub.hub()._reader is None)  # woken, not left to time out
    await _until(lambda: not _hub_connections())  # its read ended, its connection closed


async def test_the_hub_starts_again_for_a_follower_after_it_stopped():
    first = _run()
    await _finish(first)
    assert await asyncio.wait_for(_seqs(first), timeout=10) == [1]
    await _until(lambda: event_hub.hub()._reader is None)
    second = _run()
    follower = asyncio.create_task(_seqs(second))
    await _until(lambda: event_hub.hub().followed == 1)
    await _finish(second)

    assert await asyncio.wait_for(follower, timeout=10) == [1]


async def test_an_entry_frame_is_the_json_of_its_event():
    run_id = _run()
    await events.publish(run_id, events.TOKEN, "llm_1", {"text": 'say "hi" ✓\n', "n": [1, 2.5]})
    await events.publish(run_id, events.RUN_FINISHED, None, {})

    entries = await events.replay_entries(run_id)

    assert [json.loads(entry.frame) for entry in entries] == [entry.event for entry in entries]
    assert entries[0].event["data"] == {"text": 'say "hi" ✓\n', "n": [1, 2.5]}
    assert entries[1].event["node"] is None
