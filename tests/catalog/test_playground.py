"""The compare playground: one prompt to two models, both answers streamed by a real worker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import Client
from django.urls import reverse

from catalog.models import Model, Usage
from catalog.services import model_create
from catalog.services import playground as service
from studio import events, redis_client
from workers import resident, tasks
from workspaces.services import member_add, workspace_create
from workspaces.sharing import object_grant, object_revoke

PROMPT = "alpha beta gamma"


def form(model_a, model_b, **changes) -> dict:
    return {
        "model_a": model_a.id,
        "model_b": model_b.id,
        "system": "Be brief.",
        "prompt": PROMPT,
        "temperature": "0",
        "max_tokens": "64",
        **changes,
    }


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def stream_ids(response) -> dict[str, str]:
    return {pane["side"]: pane["stream_id"] for pane in response.context["panes"]}


def logged(stream_id: str) -> list[dict]:
    return asyncio.run(events.replay(stream_id))


def job_keys() -> set[bytes]:
    return set(redis_client.client().scan_iter("studio:playground:play-*"))


async def read_sse(client, stream_id: str, **headers) -> list[dict]:
    """Follow a side's events through the view until it ends; the events it sent, in order."""
    response = await client.get(
        reverse("catalog:playground-events", args=[stream_id]), headers=headers
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"

    async def body() -> str:
        return "".join([chunk.decode() async for chunk in response.streaming_content])

    text = await asyncio.wait_for(body(), timeout=30)
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            event = json.loads(fields["data"])
            assert (fields["id"], fields["event"]) == (str(event["seq"]), event["type"])
            found.append(event)
    return found


@pytest.fixture
async def owner_client(async_client, owner):
    """An async client signed in as the owner. Its sync work runs in asgiref's one executor
    thread, whose connection the test client never closes: closed here, or the test database
    cannot be dropped at the end."""
    await async_client.aforce_login(owner)
    yield async_client
    await sync_to_async(connections.close_all)()


@pytest.fixture
def priced_echo(db):
    model = model_create(
        slug="priced", name="Priced echo", engine="echo", settings={"delay_ms": 20}
    )
    Model.objects.filter(id=model.id).update(price_input=Decimal(2), price_output=Decimal(6))
    return Model.objects.get(id=model.id)


# --- through the worker ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_both_answers_stream_from_the_worker_and_each_call_is_metered(
    worker, workspace, owner, echo_model, priced_echo, owner_client
):
    # A token every 20 ms on both sides, as a model makes them: each is an event of its own
    # (tokens made within a few milliseconds share one: tests/studio/test_token_buffer.py).
    await Model.objects.filter(id=echo_model.id).aupdate(settings={"delay_ms": 20})
    response = await owner_client.post(
        reverse("catalog:playground-start"), form(echo_model, priced_echo)
    )
    assert response.status_code == 200
    streams = stream_ids(response)
    assert set(streams) == {"a", "b"} and streams["a"] != streams["b"]
    assert all(s.startswith("play-") for s in streams.values())

    sides = {side: await read_sse(owner_client, sid) for side, sid in streams.items()}

    for side, received in sides.items():
        assert [e["seq"] for e in received] == list(range(1, len(received) + 1))
        assert [e["type"] for e in received] == ["run.started"] + ["token"] * 3 + ["run.finished"]
        assert {e["node"] for e in received} == {side}
        assert "".join(e["data"]["text"] for e in received if e["type"] == "token") == PROMPT
        finished = received[-1]["data"]
        # "Be brief." counts as input too.
        assert (finished["input_tokens"], finished["output_tokens"]) == (5, 3)
        assert 0 <= finished["ttft_ms"] <= finished["latency_ms"]
        assert finished["finish_reason"] == "stop"
    assert sides["a"][0]["data"]["model"] == "echo"
    assert sides["a"][-1]["data"]["cost"] == "0"
    # 5 input tokens at 2 and 3 output tokens at 6 per million.
    assert Decimal(sides["b"][-1]["data"]["cost"]) == Decimal("0.000028")
    assert sides["b"][-1]["data"]["latency_ms"] >= 60  # three tokens 20 ms apart

    rows = await sync_to_async(list)(
        Usage.objects.filter(source="playground").order_by("model__slug")
    )
    assert [(r.model_id, r.user_id, r.workspace_id) for r in rows] == [
        (echo_model.id, owner.id, workspace.id),
        (priced_echo.id, owner.id, workspace.id),
    ]
    assert all(r.ok and r.output_tokens == 3 and r.ttft_ms is not None for r in rows)
    assert rows[1].cost == Decimal("0.000028")
    assert resident.runtime().loads == 0  # the web side never ran a model


@pytest.mark.asyncio
async def test_a_reader_resumes_after_the_last_event_it_saw(worker, echo_model, owner_client):
    response = await owner_client.post(
        reverse("catalog:playground-start"), form(echo_model, echo_model)
    )
    stream_id = stream_ids(response)["a"]
    whole = await read_sse(owner_client, stream_id)

    rest = await read_sse(owner_client, stream_id, **{"Last-Event-ID": "2"})

    assert rest == whole[2:]
    # Past the end: 204 tells EventSource to stop reconnecting.
    url = reverse("catalog:playground-events", args=[stream_id])
    ended = await owner_client.get(url, headers={"Last-Event-ID": str(whole[-1]["seq"])})
    assert ended.status_code == 204


def test_a_second_delivery_of_the_task_does_nothing(worker, owner, echo_model):
    response = logged_in(owner).post(
        reverse("catalog:playground-start"), form(echo_model, echo_model)
    )
    stream_id, other = stream_ids(response).values()
    received = asyncio.run(_follow_to_end(stream_id))
    asyncio.run(_follow_to_end(other))

    tasks.playground_generate(stream_id)  # Celery delivers at least once: replay it by hand

    assert logged(stream_id) == received
    assert Usage.objects.filter(source="playground").count() == 2


async def _follow_to_end(stream_id: str, timeout: float = 30) -> list[dict]:
    async def collect() -> list[dict]:
        return [e async for e in events.follow(stream_id) if e is not None]

    return await asyncio.wait_for(collect(), timeout=timeout)


def test_a_model_that_fails_ends_its_side_with_the_reason(worker, owner, echo_model):
    broken = model_create(slug="broken", name="Broken", engine="cpu", weights="/nonexistent")
    response = logged_in(owner).post(reverse("catalog:playground-start"), form(echo_model, broken))
    streams = stream_ids(response)

    # The worker tries to load the CPU engine (torch) before it finds the weights missing.
    bad = asyncio.run(_follow_to_end(streams["b"], timeout=180))
    good = asyncio.run(_follow_to_end(streams["a"]))

    assert good[-1]["type"] == "run.finished"
    assert [e["type"] for e in bad] == ["run.started", "run.failed"]
    assert "/nonexistent" in bad[-1]["data"]["reason"]
    failed = Usage.objects.get(source="playground", model=broken)
    assert not failed.ok and "/nonexistent" in failed.error and failed.cost == 0


def test_an_answer_that_takes_too_long_is_cut_off_and_metered_as_failed(
    transactional_db, workspace, owner, slow_echo_model, monkeypatch
):
    # Run here, by hand: a job made directly, so that no task reaches the session's worker.
    job = service.PlaygroundJob(
        stream_id=f"play-{uuid.uuid4().hex}",
        side="a",
        user_id=owner.id,
        workspace_id=workspace.id,
        model_id=slow_echo_model.id,
        system="",
        prompt="one two three four",
        temperature=0.0,
        max_tokens=64,
        created_at=time.time(),
    )
    monkeypatch.setattr(service, "GENERATE_TIMEOUT_S", 0.3)  # the model takes 200 ms a token

    async def generate() -> None:
        try:
            engine_for = resident.Resident().engine_for
            await service.playground_agenerate(
                job=job, model=slow_echo_model, engine_for=engine_for
            )
        finally:
            await sync_to_async(connections.close_all)()

    asyncio.run(generate())

    received = logged(job.stream_id)
    assert [e["type"] for e in received] == ["run.started", "token", "run.failed"]
    assert received[-1]["data"]["reason"] == "no complete answer within 0.3 s"
    failed = Usage.objects.get(source="playground")
    assert not failed.ok and failed.model_id == slow_echo_model.id and failed.user_id == owner.id


# --- who may read and start -----------------------------------------------------------------


def test_only_the_user_who_started_may_read_the_events(db, owner, viewer, outsider, echo_model):
    response = logged_in(owner).post(
        reverse("catalog:playground-start"), form(echo_model, echo_model)
    )
    url = reverse("catalog:playground-events", args=[stream_ids(response)["a"]])

    for intruder in (viewer, outsider):
        assert logged_in(intruder).get(url).status_code == 404
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    # Ids that were never issued are no different.
    fake = reverse("catalog:playground-events", args=["play-" + "0" * 32])
    assert logged_in(owner).get(fake).status_code == 404
    assert logged_in(owner).get(reverse("catalog:playground-events", args=["x"])).status_code == 404


def test_a_model_of_another_workspace_is_not_found(db, owner, echo_model):
    other = workspace_create(slug="other", name="Other")
    theirs = model_create(slug="theirs", name="Theirs", engine="echo", workspace=other)
    before = job_keys()
    client = logged_in(owner)

    assert (
        client.post(reverse("catalog:playground-start"), form(echo_model, theirs)).status_code
        == 404
    )
    # Even a member of both workspaces uses only the one they work in: usage bills to it.
    member_add(workspace=other, user=owner, role="owner")
    assert (
        client.post(reverse("catalog:playground-start"), form(theirs, echo_model)).status_code
        == 404
    )
    unknown = {**form(echo_model, echo_model), "model_b": 999_999}
    assert client.post(reverse("catalog:playground-start"), unknown).status_code == 404
    assert job_keys() == before


def test_a_limited_member_uses_only_the_models_shared_with_them(
    db, workspace, owner, make_member, echo_model
):
    own = model_create(slug="own-echo", name="Own echo", engine="echo", workspace=workspace)
    member = make_member("operator", limited=True)
    client = logged_in(member)
    start = reverse("catalog:playground-start")

    assert "own-echo" not in client.get(reverse("catalog:playground")).content.decode()
    assert client.post(start, form(own, echo_model)).status_code == 404  # hidden from them
    object_grant(obj=own, subject=member, level="view", actor=owner)
    assert client.post(start, form(own, echo_model)).status_code == 403  # seen, not usable
    object_grant(obj=own, subject=member, level="use", actor=owner)
    assert "own-echo" in client.get(reverse("catalog:playground")).content.decode()
    assert client.post(start, form(own, echo_model)).status_code == 200


def test_the_task_refuses_when_permission_was_revoked_before_it_ran(
    db, workspace, owner, make_member, echo_model
):
    own = model_create(slug="own-echo", name="Own echo", engine="echo", workspace=workspace)
    member = make_member("operator", limited=True)
    object_grant(obj=own, subject=member, level="use", actor=owner)
    # In a `db` test the on-commit dispatch never fires: the task runs here, by hand.
    response = logged_in(member).post(reverse("catalog:playground-start"), form(own, echo_model))
    streams = stream_ids(response)

    object_revoke(obj=own, subject=member, actor=owner)
    tasks.playground_generate(streams["a"])

    [failed] = logged(streams["a"])
    assert failed["type"] == "run.failed"
    assert failed["data"]["reason"].startswith("permission revoked")
    assert not Usage.objects.exists()


def test_a_side_no_worker_took_in_time_is_failed_not_run_late(db, owner, echo_model, monkeypatch):
    response = logged_in(owner).post(
        reverse("catalog:playground-start"), form(echo_model, echo_model)
    )
    stream_id = stream_ids(response)["a"]
    monkeypatch.setattr(service, "QUEUE_WAIT_S", -1.0)

    tasks.playground_generate(stream_id)

    [failed] = logged(stream_id)
    assert "no worker picked this up" in failed["data"]["reason"]
    assert not Usage.objects.exists()


def test_a_reader_stops_waiting_at_the_deadline_when_the_worker_is_gone(
    db, owner, echo_model, monkeypatch
):
    response = logged_in(owner).post(
        reverse("catalog:playground-start"), form(echo_model, echo_model)
    )
    job = service.playground_job(stream_ids(response)["a"])
    monkeypatch.setattr(service, "QUEUE_WAIT_S", -1.0)
    monkeypatch.setattr(service, "GENERATE_TIMEOUT_S", 0.0)

    async def read() -> list[dict]:
        found = service.playground_follow(job, idle_s=0.1)
        return [e async for e in found if e is not None]

    [failed] = asyncio.run(asyncio.wait_for(read(), timeout=10))
    assert failed["type"] == "run.failed"
    assert "worker serving this model stopped" in failed["data"]["reason"]


# --- the form and the page ------------------------------------------------------------------


def test_the_page_offers_usable_chat_models_and_preselects_from_the_query(
    db, workspace, owner, echo_model, slow_echo_model
):
    model_create(slug="embedder", name="Embedder", engine="echo", task="embedding")
    client = logged_in(owner)

    page = client.get(reverse("catalog:playground"), {"a": slow_echo_model.id, "b": echo_model.id})

    assert page.status_code == 200
    html = page.content.decode()
    assert "Echo (echo)" in html and "Slow echo (slow-echo)" in html
    assert "embedder" not in html
    form_ = page.context["form"]
    assert form_["model_a"].value() == str(slow_echo_model.id)
    assert form_["model_b"].value() == str(echo_model.id)


def test_bad_input_answers_400_with_the_errors(db, owner, echo_model):
    embedder = model_create(slug="embedder", name="Embedder", engine="echo", task="embedding")
    client = logged_in(owner)
    start = reverse("catalog:playground-start")
    before = job_keys()

    empty = client.post(
        start, form(echo_model, echo_model, prompt="  "), headers={"HX-Request": "true"}
    )
    assert empty.status_code == 400
    assert "Type a prompt first." in empty.content.decode()
    assert "<html" not in empty.content.decode()  # the workbench partial, for htmx to swap
    not_chat = client.post(start, form(echo_model, embedder))
    assert not_chat.status_code == 400
    assert "Embedder is not a chat model (its task is Embedding)." in not_chat.content.decode()
    hot = client.post(start, form(echo_model, echo_model, temperature="5", max_tokens="0"))
    assert hot.status_code == 400
    assert set(hot.context["form"].errors) == {"temperature", "max_tokens"}
    assert job_keys() == before


def test_wrong_methods_are_refused(db, owner):
    client = logged_in(owner)
    assert client.get(reverse("catalog:playground-start")).status_code == 405
    assert client.post(reverse("catalog:playground")).status_code == 405
    url = reverse("catalog:playground-events", args=["play-" + "0" * 32])
    assert client.post(url).status_code == 405
