"""The REST API of published flows, over real HTTP to a real server and worker."""

from __future__ import annotations

import json

import httpx
import pytest

from flows.models import NodeResult, NodeStatus, Run, RunSource, RunStatus
from tests.workspaces.legacy_keys import mark_keys_legacy
from workspaces.models import ApiKey


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
    from workspaces.models import Workspace
    from workspaces.services import api_key_create

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


# --- key scopes -------------------------------------------------------------------------------


def scoped_key(workspace, user, **scopes) -> tuple[ApiKey, dict[str, str]]:
    from workspaces.services import KeyScopes, api_key_create

    row, key = api_key_create(
        workspace=workspace, name="scoped", user=user, scopes=KeyScopes(**scopes)
    )
    return row, {"Authorization": f"Bearer {key}"}


def start(flow, *, user=None, api_key=None, source=RunSource.API) -> Run:
    from flows.services import run_create

    return run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "private words"},
        source=source,
        user=user,
        api_key=api_key,
    )


def test_a_key_scoped_to_one_flow_cannot_run_or_read_another(
    client, workspace, owner, echo_model, make_flow
):
    alpha, beta = make_flow(echo_model, slug="alpha"), make_flow(echo_model, slug="beta")
    _, headers = scoped_key(workspace, owner, flow_access="run", flow_ids=[alpha.id])
    other, _ = scoped_key(workspace, owner, flow_access="write")

    refused = client.post(
        "/api/v1/flows/beta/runs",
        {"inputs": {"message": "hi"}},
        "application/json",
        headers=headers,
    )
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "flow_not_found"
    assert Run.objects.count() == 0

    # Runs of beta, by another key, and a person's chat on alpha itself: out of reach.
    for run in (start(beta, api_key=other), start(alpha, user=owner, source=RunSource.CHAT)):
        for url in (f"/api/v1/runs/{run.id}", f"/api/v1/runs/{run.id}/events"):
            response = client.get(url, headers=headers)
            assert response.status_code == 404, url
            assert response.json()["error"]["code"] == "run_not_found"
        answer = client.post(
            f"/api/v1/runs/{run.id}/answer", {"node": "x"}, "application/json", headers=headers
        )
        assert answer.status_code == 404
        run.refresh_from_db()
        assert run.status == RunStatus.QUEUED


def test_a_run_key_reads_only_its_own_runs_and_a_write_key_every_api_run(
    client, workspace, owner, echo_model, make_flow
):
    flow = make_flow(echo_model)
    runner, runner_headers = scoped_key(workspace, owner, flow_access="run")
    _, writer_headers = scoped_key(workspace, owner, flow_access="write")
    other, _ = scoped_key(workspace, owner, flow_access="run")
    mine, theirs = start(flow, api_key=runner), start(flow, api_key=other)
    chat = start(flow, user=owner, source=RunSource.CHAT)

    assert client.get(f"/api/v1/runs/{mine.id}", headers=runner_headers).status_code == 200
    assert client.get(f"/api/v1/runs/{theirs.id}", headers=runner_headers).status_code == 404
    assert client.get(f"/api/v1/runs/{theirs.id}", headers=writer_headers).status_code == 200
    # No key reads a person's chat.
    assert client.get(f"/api/v1/runs/{chat.id}", headers=writer_headers).status_code == 404


def test_a_key_without_flow_access_gets_403(client, workspace, owner, echo_model, make_flow):
    make_flow(echo_model)
    _, headers = scoped_key(workspace, owner, knowledge_access="read")

    response = client.post(
        "/api/v1/flows/assistant/runs",
        {"inputs": {"message": "hi"}},
        "application/json",
        headers=headers,
    )

    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This API key has no access to flows."
    assert Run.objects.count() == 0


def test_an_expired_key_gets_401_saying_so(client, workspace, owner, echo_model, make_flow):
    from datetime import timedelta

    from django.utils import timezone

    make_flow(echo_model)
    row, headers = scoped_key(
        workspace, owner, flow_access="run", expires_at=timezone.now() + timedelta(days=1)
    )
    ApiKey.objects.filter(id=row.id).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client.post(
        "/api/v1/flows/assistant/runs",
        {"inputs": {"message": "hi"}},
        "application/json",
        headers=headers,
    )

    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("This API key expired on ")
    assert Run.objects.count() == 0
    row.refresh_from_db()
    assert row.last_used_at is None


def test_a_key_never_does_more_than_its_creator_does_now(
    client, workspace, owner, make_member, echo_model, make_flow
):
    from workspaces.models import Membership
    from workspaces.services import user_deactivate

    make_flow(echo_model)
    admin = make_member("admin", "ada")
    _, headers = scoped_key(workspace, admin, flow_access="run")

    def run_it():
        return client.post(
            "/api/v1/flows/assistant/runs",
            {"inputs": {"message": "hi"}},
            "application/json",
            headers=headers,
        )

    Membership.objects.filter(user=admin).update(role="viewer")  # may read, not run, flows
    refused = run_it()
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "This API key may not run this flow."

    Membership.objects.filter(user=admin).update(role="admin")
    user_deactivate(user=admin, actor=owner)
    gone = run_it()
    assert gone.status_code == 401
    assert gone.json()["error"]["message"] == "The member who made this API key is deactivated."
    assert Run.objects.count() == 0


def test_a_legacy_key_is_refused_until_an_admin_confirms_it_on_the_keys_page(
    client, workspace, owner, viewer, echo_model, make_flow
):

    from workspaces.models import AuditEvent
    from workspaces.services import api_key_create

    flow = make_flow(echo_model)
    row, key = api_key_create(workspace=workspace, name="old", user=owner)
    # The migration's own step, as on an upgrade.
    mark_keys_legacy()
    headers = {"Authorization": f"Bearer {key}"}
    chat = start(flow, user=owner, source=RunSource.CHAT)

    refused = client.get(f"/api/v1/runs/{chat.id}", headers=headers)
    assert refused.status_code == 401
    assert "an admin must confirm or re-scope it" in refused.json()["error"]["message"]

    client.force_login(viewer)
    assert client.post(f"/keys/{row.id}/confirm").status_code == 404
    row.refresh_from_db()
    assert row.legacy_confirmed_at is None

    client.force_login(owner)
    assert "made before scopes" in client.get("/keys/").text
    confirmed = client.post(f"/keys/{row.id}/confirm")
    assert confirmed.status_code == 302
    row.refresh_from_db()
    assert (row.legacy_confirmed_by, row.legacy) == (owner, True)
    assert AuditEvent.objects.filter(action="key.confirm_legacy", target_id=str(row.id)).exists()

    # Today's behaviour, as the admin chose: the whole workspace, a person's chat included.
    client.logout()
    again = client.get(f"/api/v1/runs/{chat.id}", headers=headers)
    assert again.status_code == 200
    assert again.json()["run_id"] == str(chat.id)


def test_a_key_answers_only_the_gates_of_runs_it_may_see(live_studio, workspace, owner):
    from tests.flows.test_waiting_nodes import approval_graph, publish, wait_for_status

    flow = publish(workspace, owner, approval_graph(), "approval")
    starter, starter_headers = scoped_key(workspace, owner, flow_access="run")
    _, bystander_headers = scoped_key(workspace, owner, flow_access="run")
    _, writer_headers = scoped_key(workspace, owner, flow_access="write")
    keyed = wait_for_status(start(flow, api_key=starter).id, RunStatus.WAITING)
    chat = wait_for_status(start(flow, user=owner, source=RunSource.CHAT).id, RunStatus.WAITING)

    def answer(run, headers):
        return httpx.post(
            f"{live_studio}/api/v1/runs/{run.id}/answer",
            json={"node": "review", "values": {"approved": True}},
            headers=headers,
            timeout=30,
        )

    assert answer(keyed, bystander_headers).status_code == 404
    assert answer(chat, writer_headers).status_code == 404
    assert answer(chat, starter_headers).status_code == 404
    for run in (keyed, chat):
        assert NodeResult.objects.get(run=run, node_id="review").status == NodeStatus.WAITING

    assert answer(keyed, starter_headers).status_code == 200
    assert NodeResult.objects.get(run=keyed, node_id="review").status == NodeStatus.SUCCEEDED
    assert Run.objects.get(id=chat.id).status == RunStatus.WAITING
    wait_for_status(keyed.id, RunStatus.SUCCEEDED)


def test_a_run_of_a_flow_outside_the_keys_scope_is_failed_by_the_worker(
    worker, workspace, owner, echo_model, make_flow
):
    from tests.flows.helpers import wait_for_run

    alpha, beta = make_flow(echo_model, slug="alpha"), make_flow(echo_model, slug="beta")
    row, _ = scoped_key(workspace, owner, flow_access="run", flow_ids=[alpha.id])

    # As if the key was narrowed between the request and the worker: the worker checks again.
    run = wait_for_run(start(beta, api_key=row).id)

    assert run.status == RunStatus.FAILED
    assert run.error.endswith("the API key may no longer run this flow")
    assert run.outputs == {}
    assert wait_for_run(start(alpha, api_key=row).id).status == RunStatus.SUCCEEDED
