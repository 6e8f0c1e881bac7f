"""The run page's event stream: the trace follows it instead of polling."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.urls import reverse

from flows.models import RunSource
from flows.services import run_create
from studio import events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(make_flow, echo_model):
    """A queued run whose events the test publishes (no worker picks it up)."""
    flow = make_flow(echo_model)
    return run_create(
        flow=flow, version=flow.published_version, inputs={"message": "hi"}, source=RunSource.CHAT
    )


@pytest.fixture
async def signed_in(async_client):
    """Sign the async client in as a user; the connections its sync work opened are closed
    after the test, or the test database cannot be dropped."""

    async def sign_in(user):
        await async_client.aforce_login(user)
        return async_client

    yield sign_in
    await sync_to_async(connections.close_all)()


def publish_a_whole_run(run_id) -> None:
    events.publish_sync(run_id, events.RUN_STARTED)
    events.publish_sync(run_id, events.NODE_STARTED, "llm_1", {"type": "llm"})
    events.publish_sync(run_id, events.TOKEN, "llm_1", {"text": "secret answer"})
    events.publish_sync(run_id, events.NODE_FINISHED, "llm_1", {"outputs": {"text": "x"}})
    events.publish_sync(run_id, events.RUN_FINISHED, None, {"outputs": {"text": "x"}})


async def read_frames(client, run_id, **headers) -> list[tuple[str, dict]]:
    """The (event, data) frames of the stream, read to its end."""
    response = await client.get(reverse("flows:run-events", args=[run_id]), headers=headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"

    async def body() -> str:
        return "".join([chunk.decode() async for chunk in response.streaming_content])

    text = await asyncio.wait_for(body(), timeout=30)
    frames = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            frames.append((fields["event"], json.loads(fields["data"])))
    return frames


async def test_the_run_page_stream_sends_the_runs_events_but_not_its_tokens(signed_in, owner, run):
    await sync_to_async(publish_a_whole_run)(run.id)
    client = await signed_in(owner)

    frames = await read_frames(client, run.id)

    assert [name for name, _ in frames] == [
        "stream.ready",
        "run.started",
        "node.started",
        "node.finished",
        "run.finished",
        "stream.end",
    ]
    # The page renders the trace from the database: events carry no outputs, no text.
    assert frames[2][1] == {"seq": 2, "type": "node.started", "node": "llm_1"}
    assert "secret answer" not in json.dumps(frames)


async def test_a_reconnect_resumes_after_the_last_event_and_renders_first(signed_in, owner, run):
    await sync_to_async(publish_a_whole_run)(run.id)
    client = await signed_in(owner)

    frames = await read_frames(client, run.id, **{"Last-Event-ID": "4"})

    assert [name for name, _ in frames] == ["stream.ready", "run.finished", "stream.end"]


async def test_the_run_page_stream_is_not_found_for_a_user_without_access(signed_in, outsider, run):
    await sync_to_async(publish_a_whole_run)(run.id)
    client = await signed_in(outsider)

    response = await client.get(reverse("flows:run-events", args=[run.id]))

    assert response.status_code == 404


def test_the_run_page_stream_needs_a_login_and_a_get(client, owner, run):
    url = reverse("flows:run-events", args=[run.id])

    assert client.get(url).status_code == 302
    client.force_login(owner)
    assert client.post(url).status_code == 405


def test_a_first_call_says_the_model_is_loading_and_later_ones_do_not(
    worker, owner, tiny_model, make_flow
):
    from tests.flows.helpers import logged_events, wait_for_run

    flow = make_flow(tiny_model, max_tokens=4)

    def types_of_a_run() -> list[str]:
        run = run_create(
            flow=flow,
            version=flow.published_version,
            inputs={"message": "hello"},
            source=RunSource.STUDIO,
            user=owner,
        )
        assert wait_for_run(run.id).status == "succeeded"
        return [event["type"] for event in logged_events(run.id)]

    first, second = types_of_a_run(), types_of_a_run()

    # The worker had never loaded this catalog entry: the chat can say why it waits.
    assert first.index(events.NODE_LOADING) < first.index(events.TOKEN)
    assert events.NODE_LOADING not in second
