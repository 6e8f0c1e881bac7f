"""Tokens reach a WebSocket as they are generated; a reconnect gets what it missed, once."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from flows.models import RunSource
from flows.routing import websocket_urlpatterns
from flows.services import run_create

WORDS = "alpha beta gamma delta epsilon zeta eta theta"
app = URLRouter(websocket_urlpatterns)


def communicator(run_id, user, after: int = 0) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(app, f"/ws/runs/{run_id}/?after={after}")
    ws.scope["user"] = user
    return ws


async def receive_until(ws, stop) -> list[dict]:
    received = []
    while True:
        event = await ws.receive_json_from(timeout=20)
        received.append(event)
        if stop(event, received):
            return received


@pytest.fixture
def slow_run(worker, owner, make_flow):
    from catalog.services import model_create

    model = model_create(slug="ticker", name="Ticker", engine="echo", settings={"delay_ms": 60})
    flow = make_flow(model)
    return run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": WORDS},
        source=RunSource.STUDIO,
        user=owner,
    )


@pytest.mark.asyncio
async def test_tokens_stream_and_a_reconnect_resumes_without_loss_or_repeats(slow_run, owner):
    first = communicator(slow_run.id, owner)
    connected, _ = await first.connect()
    assert connected
    part = await receive_until(first, lambda e, got: sum(x["type"] == "token" for x in got) == 3)
    await first.disconnect()
    # Tokens arrived one by one while the model was still generating.
    assert part[-1]["type"] == "token"
    assert all(e["type"] != "run.finished" for e in part)

    second = communicator(slow_run.id, owner, after=part[-1]["seq"])
    assert (await second.connect())[0]
    rest = await receive_until(second, lambda e, got: e["type"] == "run.finished")
    assert (await second.receive_output(timeout=5))["type"] == "websocket.close"

    events = part + rest
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert "".join(e["data"]["text"] for e in events if e["type"] == "token") == WORDS
    finished = next(e for e in events if e["type"] == "node.finished" and e["node"] == "llm_1")
    assert finished["data"]["output_tokens"] == 8
    assert events[-1]["data"]["outputs"] == {"text": WORDS}


@pytest.mark.asyncio
async def test_a_finished_run_replays_whole_to_a_late_client(slow_run, owner):
    from tests.flows.helpers import wait_for_run

    await database_sync_to_async(wait_for_run)(slow_run.id)
    ws = communicator(slow_run.id, owner)
    assert (await ws.connect())[0]
    events = await receive_until(ws, lambda e, got: e["type"] == "run.finished")
    await ws.disconnect()
    assert events[0]["type"] == "run.started" and events[0]["seq"] == 1


@pytest.mark.asyncio
async def test_a_batched_socket_gets_the_events_ready_together_in_one_message(slow_run, owner):
    """``?batch=1`` (the chat page's socket): each message is a list of events, in order."""
    import asyncio
    import json

    from studio import events as run_events

    while len(await run_events.replay(slow_run.id)) < 3:  # some events logged before it connects
        await asyncio.sleep(0.02)
    ws = WebsocketCommunicator(app, f"/ws/runs/{slow_run.id}/?after=0&batch=1")
    ws.scope["user"] = owner
    assert (await ws.connect())[0]
    messages = []
    while not messages or messages[-1][-1]["type"] != "run.finished":
        messages.append(json.loads(await ws.receive_from(timeout=20)))
    assert (await ws.receive_output(timeout=5))["type"] == "websocket.close"

    events = [event for message in messages for event in message]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert "".join(e["data"]["text"] for e in events if e["type"] == "token") == WORDS
    assert len(messages) < len(events)  # what was logged before it connected came at once


@pytest.mark.asyncio
async def test_a_user_of_another_workspace_cannot_listen(slow_run, outsider, viewer):
    from django.contrib.auth.models import AnonymousUser

    for intruder in (outsider, AnonymousUser()):
        ws = communicator(slow_run.id, intruder)
        await ws.connect()
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    # A viewer of the same workspace may watch.
    ws = communicator(slow_run.id, viewer)
    assert (await ws.connect())[0]
    await ws.disconnect()
