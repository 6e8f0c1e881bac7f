"""Conversations over the REST API, over real HTTP to a real server and worker: a client keeps
its end users' threads, each message sent with the turns before it."""

from __future__ import annotations

import json

import httpx
import pytest

from flows.models import Run


@pytest.fixture
def flow(echo_model, make_flow):
    return make_flow(echo_model)


class Client:
    def __init__(self, base: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def start(self, **body) -> dict:
        response = self.http.post("/flows/assistant/conversations", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def say(self, conversation: dict, text: str) -> dict:
        response = self.http.post(
            f"/conversations/{conversation['id']}/messages", json={"text": text}
        )
        assert response.status_code == 200, response.text
        return response.json()


def test_a_conversation_carries_its_history_and_keeps_its_messages(live_studio, flow, api_key):
    client = Client(live_studio, api_key)
    conversation = client.start(user="end-user-7")
    assert conversation["user"] == "end-user-7" and conversation["flow"] == "assistant"

    first = client.say(conversation, "capital of France")
    second = client.say(conversation, "and its population")

    assert first["answer"]["text"] == "capital of France"
    assert first["answer"]["status"] == "done"
    latest = Run.objects.get(id=second["answer"]["run_id"])
    assert latest.history == [
        {"role": "user", "content": "capital of France"},
        {"role": "assistant", "content": "capital of France"},
    ]
    listed = client.http.get(f"/conversations/{conversation['id']}/messages").json()
    assert [m["text"] for m in listed["data"]] == [
        "capital of France",
        "capital of France",
        "and its population",
        "and its population",
    ]
    assert listed["has_more"] is False

    rated = client.http.post(
        f"/messages/{second['answer']['id']}/feedback", json={"rating": -1, "comment": "short"}
    )
    assert rated.status_code == 200
    assert (rated.json()["feedback"], rated.json()["feedback_comment"]) == (-1, "short")


def test_a_streamed_message_sends_the_runs_events(live_studio, flow, api_key):
    client = Client(live_studio, api_key)
    conversation = client.start()
    with client.http.stream(
        "POST",
        f"/conversations/{conversation['id']}/messages",
        json={"text": "one two three", "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "run.finished"
    tokens = "".join(e["data"]["text"] for e in events if e["type"] == "token")
    assert tokens == "one two three"


def test_lists_are_paginated_and_filtered_by_end_user(live_studio, flow, api_key):
    client = Client(live_studio, api_key)
    for user in ("ann", "ann", "bob"):
        client.start(user=user)

    page = client.http.get("/flows/assistant/conversations", params={"per_page": 2}).json()
    assert (len(page["data"]), page["has_more"]) == (2, True)
    rest = client.http.get("/flows/assistant/conversations", params={"per_page": 2, "page": 2})
    assert (len(rest.json()["data"]), rest.json()["has_more"]) == (1, False)
    anns = client.http.get("/flows/assistant/conversations", params={"user": "ann"}).json()
    assert [c["user"] for c in anns["data"]] == ["ann", "ann"]
    for params in ({"per_page": 101}, {"page": 0}, {"page": "x"}):
        refused = client.http.get("/flows/assistant/conversations", params=params)
        assert refused.status_code == 400
        assert "message" in refused.json()["error"]


def test_another_key_reaches_nothing_and_a_deleted_conversation_is_gone(
    live_studio, flow, api_key, workspace
):
    from workspaces.services import api_key_create

    mine = Client(live_studio, api_key)
    conversation = mine.start()
    answer = mine.say(conversation, "private words")["answer"]
    theirs = Client(live_studio, api_key_create(workspace=workspace, name="other")[1])
    path = f"/conversations/{conversation['id']}"

    assert theirs.http.get(path).status_code == 404
    assert theirs.http.get(f"{path}/messages").status_code == 404
    assert theirs.http.post(f"{path}/messages", json={"text": "hi"}).status_code == 404
    assert theirs.http.delete(path).status_code == 404
    assert (
        theirs.http.post(f"/messages/{answer['id']}/feedback", json={"rating": 1}).status_code
        == 404
    )
    listed = theirs.http.get("/flows/assistant/conversations").json()
    assert listed["data"] == []

    assert mine.http.delete(path).status_code == 204
    assert mine.http.get(path).status_code == 404


def test_bad_requests_get_clear_errors_and_store_nothing(live_studio, flow, api_key):
    client = Client(live_studio, api_key)
    conversation = client.start()
    path = f"/conversations/{conversation['id']}/messages"

    empty = client.http.post(path, json={"text": ""})
    unknown = client.http.post(path, json={"text": "hi", "model": "gpt"})
    assert empty.status_code == unknown.status_code == 400
    assert empty.json()["error"]["message"]
    missing = client.http.post("/flows/nope/conversations", json={})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "flow_not_found"
    assert client.http.get(path).json()["data"] == []
    assert httpx.get(f"{live_studio}/api/v1{path}").status_code == 401
