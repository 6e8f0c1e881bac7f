"""The REST API of published flows, over real HTTP to a real server and worker."""

from __future__ import annotations

import json

import httpx
import pytest

from flows.models import Run, RunSource, RunStatus
from studio.models import ApiKey


@pytest.fixture
def flow(echo_model, make_flow):
    return make_flow(echo_model)


def post_run(base: str, key: str | None, body: dict, slug: str = "assistant") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{base}/api/v1/flows/{slug}/runs", json=body, headers=headers, timeout=60)


def test_a_run_returns_its_outputs_and_usage(live_studio, flow, api_key):
    response = post_run(live_studio, api_key, {"inputs": {"message": "hello there world"}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["outputs"] == {"text": "hello there world"}
    assert body["usage"]["output_tokens"] == 3
    run = Run.objects.get(id=body["run_id"])
    assert (run.status, run.source) == (RunStatus.SUCCEEDED, RunSource.API)
    assert run.api_key == ApiKey.objects.get()
    assert run.flow_version == flow.published_version

    again = httpx.get(
        f"{live_studio}/api/v1/runs/{run.id}", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert again.json()["outputs"] == {"text": "hello there world"}


def sse_events(response: httpx.Response) -> list[dict]:
    events = []
    for block in response.text.split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data:
            events.append(json.loads(data[0]))
    return events


def test_streaming_sends_server_sent_events(live_studio, flow, api_key):
    with httpx.stream(
        "POST",
        f"{live_studio}/api/v1/flows/assistant/runs",
        json={"inputs": {"message": "one two three"}, "stream": True},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        response.read()
    events = sse_events(response)
    assert [e["type"] for e in events][0] == "run.started"
    assert events[-1]["type"] == "run.finished"
    assert "".join(e["data"]["text"] for e in events if e["type"] == "token") == "one two three"
    assert "id: 1\nevent: run.started\n" in response.text

    # Resuming after an event id gives the rest only.
    resumed = httpx.get(
        f"{live_studio}/api/v1/runs/{events[0]['run']}/events",
        headers={"Authorization": f"Bearer {api_key}", "Last-Event-ID": "4"},
        timeout=30,
    )
    assert [e["seq"] for e in sse_events(resumed)] == [e["seq"] for e in events[4:]]


@pytest.mark.parametrize("key", [None, "sk-studio-00000000.wrong", "Basic abc", "sk-studio-nodot"])
def test_missing_or_wrong_keys_get_401_and_start_nothing(live_studio, flow, key):
    response = post_run(live_studio, key, {"inputs": {"message": "hi"}})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert Run.objects.count() == 0


def test_a_revoked_key_gets_401(live_studio, flow, api_key):
    ApiKey.objects.update(revoked_at="2026-01-01T00:00:00Z")
    assert post_run(live_studio, api_key, {"inputs": {"message": "hi"}}).status_code == 401


def test_only_published_flows_of_the_keys_workspace_run(
    live_studio, flow, echo_model, make_flow, outsider
):
    from studio.models import Workspace
    from studio.services import api_key_create

    other_key = api_key_create(workspace=Workspace.objects.get(slug="other"), name="x")[1]
    assert post_run(live_studio, other_key, {"inputs": {"message": "hi"}}).status_code == 404
    make_flow(echo_model, slug="draft", publish=False)
    key = api_key_create(workspace=flow.workspace, name="y")[1]
    assert (
        post_run(live_studio, key, {"inputs": {"message": "hi"}}, slug="draft").status_code == 404
    )
    assert Run.objects.count() == 0


def test_bad_bodies_get_a_clear_400(live_studio, flow, api_key):
    cases = [
        ({"inputs": {}}, "input 'message' is required"),
        ({"inputs": {"message": 5}}, "input 'message' must be text"),
        ({"inputs": "x"}, "inputs: Input should be an object"),
        ({"inputz": {}}, "inputz: Extra inputs are not permitted"),
    ]
    for body, message in cases:
        response = post_run(live_studio, api_key, body)
        assert response.status_code == 400, body
        assert message in response.json()["error"]["message"]
    broken = httpx.post(
        f"{live_studio}/api/v1/flows/assistant/runs",
        content=b"{not json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert broken.status_code == 400
    assert (
        httpx.get(
            f"{live_studio}/api/v1/flows/assistant/runs",
            headers={"Authorization": f"Bearer {api_key}"},
        ).status_code
        == 405
    )
    assert Run.objects.count() == 0


def test_a_reader_waits_through_a_quiet_spell_longer_than_its_idle_tick(
    live_studio, api_key, make_flow
):
    from catalog.services import model_create

    # The first token comes after 6 s, as when a model is still loading: the reader idles past
    # its 5 s tick (and past redis-py's default socket timeout) and must keep waiting.
    sleepy = model_create(slug="sleepy", name="Sleepy", engine="echo", settings={"delay_ms": 6000})
    make_flow(sleepy)
    response = post_run(live_studio, api_key, {"inputs": {"message": "awake"}})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == {"text": "awake"}
