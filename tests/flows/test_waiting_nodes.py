"""Nodes that wait: human input pauses a run until a person answers (in the studio or over the
API); a sub-flow runs another published flow as a child run. With the real worker."""

from __future__ import annotations

import time

import httpx
import pytest

from flows.models import NodeResult, NodeStatus, Run, RunSource, RunStatus
from flows.schema import GraphError
from flows.services import flow_create, flow_publish, flow_version_save, run_create
from tests.flows.helpers import logged_events, wait_for_run
from tests.flows.test_engine import assign, edge, node, output, text_input
from workspaces.models import ApiKey


def wait_for_status(run_id, status, timeout=30) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(id=run_id)
        if run.status == status:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} is {Run.objects.get(id=run_id).status}, not {status}")


def approval_graph():
    fields = [
        {"name": "approved", "type": "boolean", "required": False},
        {"name": "note", "type": "text", "required": False},
        {"name": "score", "type": "number", "required": False},
    ]
    review = node(
        "review", "human_input", {"prompt": "Approve {{input_1.message}}?", "fields": fields}
    )
    return {
        "nodes": [text_input(), review, output("approved", "note", "score", "by")],
        "edges": [
            edge("review", "approved", "output_1", "approved"),
            edge("review", "note", "output_1", "note"),
            edge("review", "score", "output_1", "score"),
            edge("review", "answered_by", "output_1", "by"),
        ],
    }


def publish(workspace, owner, graph, slug):
    flow = flow_create(workspace=workspace, slug=slug, name=slug, graph=graph, user=owner)
    return flow_publish(flow=flow, user=owner)


def start(flow, inputs, user=None) -> Run:
    return run_create(
        flow=flow,
        version=flow.published_version,
        inputs=inputs,
        source=RunSource.STUDIO,
        user=user,
    )


def test_a_run_waits_for_a_person_who_answers_on_its_page(worker, workspace, owner, viewer, client):
    flow = publish(workspace, owner, approval_graph(), "approval")
    run = wait_for_status(start(flow, {"message": "the refund"}, owner).id, RunStatus.WAITING)
    waiting = [e for e in logged_events(run.id) if e["type"] == "run.waiting"]
    assert waiting[0]["node"] == "review"
    assert waiting[0]["data"]["prompt"] == "Approve the refund?"
    assert NodeResult.objects.get(run=run, node_id="review").status == NodeStatus.WAITING

    client.force_login(viewer)  # may read the run, may not answer it
    page = client.get(f"/runs/{run.id}/")
    assert "Approve the refund?" in page.text
    assert "Only someone who may run this flow can answer." in page.text
    refused = client.post(f"/runs/{run.id}/answer/review", {"approved": "on"})
    assert refused.status_code == 403

    client.force_login(owner)
    assert 'action="/runs/' in client.get(f"/runs/{run.id}/").text
    bad = client.post(f"/runs/{run.id}/answer/review", {"score": "lots"}, follow=True)
    assert "score: &#x27;lots&#x27; is not a number" in bad.text
    assert Run.objects.get(id=run.id).status == RunStatus.WAITING  # nothing lost

    answered = client.post(
        f"/runs/{run.id}/answer/review", {"approved": "on", "note": "ok", "score": "7"}
    )
    assert answered.status_code == 302
    run = wait_for_run(run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"approved": True, "note": "ok", "score": 7, "by": owner.username}
    assert client.post(f"/runs/{run.id}/answer/review", {}).status_code == 404
    assert client.get(f"/runs/{run.id}/answer/review").status_code == 405


def test_a_waiting_run_is_answered_over_the_api(live_studio, workspace, owner, api_key):
    flow = publish(workspace, owner, approval_graph(), "approval")
    # A key answers only the runs it may see: here, one it started.
    started = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "the refund"},
        source=RunSource.API,
        api_key=ApiKey.objects.get(),
    )
    run = wait_for_status(started.id, RunStatus.WAITING)
    headers = {"Authorization": f"Bearer {api_key}"}
    url = f"{live_studio}/api/v1/runs/{run.id}/answer"

    wrong = httpx.post(url, json={"node": "nope", "values": {}}, headers=headers, timeout=30)
    assert wrong.status_code == 400
    assert "not waiting for that answer" in wrong.json()["error"]["message"]
    unknown = httpx.post(
        url, json={"node": "review", "values": {"colour": "red"}}, headers=headers, timeout=30
    )
    assert unknown.status_code == 400
    assert "unknown answers: colour" in unknown.json()["error"]["message"]
    assert httpx.post(url, json={"node": "review"}, timeout=30).status_code == 401

    answered = httpx.post(
        url, json={"node": "review", "values": {"approved": False}}, headers=headers, timeout=30
    )
    assert answered.status_code == 200, answered.text
    run = wait_for_run(run.id)
    assert run.outputs == {"approved": False, "note": None, "score": None, "by": ""}


def child_graph(value="child says {{input_1.message}}", type_="text"):
    return {
        "nodes": [text_input(), assign("say", value, type_=type_), output("text")],
        "edges": [edge("say", "value", "output_1", "text")],
    }


def parent_graph(slug="child", **policy):
    call = node(
        "call",
        "subflow",
        {"flow": slug, "inputs": {"message": "{{input_1.message}}"}, "outputs": [{"name": "text"}]},
        **policy,
    )
    return {
        "nodes": [text_input(), call, output("text")],
        "edges": [edge("call", "text", "output_1", "text")],
    }


def test_a_sub_flow_runs_as_a_child_run_and_gives_back_its_outputs(worker, workspace, owner):
    child = publish(workspace, owner, child_graph(), "child")
    parent = publish(workspace, owner, parent_graph(), "parent")
    run = wait_for_run(start(parent, {"message": "hi"}, owner).id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "child says hi"}
    (child_run,) = Run.objects.filter(parent=run)
    assert (child_run.flow, child_run.source, child_run.depth) == (child, RunSource.SUBFLOW, 1)
    assert child_run.parent_node == "call"
    assert NodeResult.objects.get(run=run, node_id="call").details["child_run"] == str(child_run.id)


def test_a_failed_sub_flow_fails_its_node_by_its_policy(worker, workspace, owner):
    publish(workspace, owner, child_graph(type_="number"), "child")
    parent = publish(workspace, owner, parent_graph(), "parent")
    run = wait_for_run(start(parent, {"message": "not a number"}, owner).id)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("node 'call' failed: the sub-flow 'child' failed: node 'say'")

    lenient = publish(
        workspace,
        owner,
        parent_graph(on_error="default", default={"text": "fallback"}),
        "lenient",
    )
    run = wait_for_run(start(lenient, {"message": "not a number"}, owner).id)
    assert run.status == RunStatus.SUCCEEDED
    assert run.outputs == {"text": "fallback"}


def test_a_flow_that_calls_itself_stops_at_the_nesting_limit(worker, workspace, owner):
    flow = publish(workspace, owner, child_graph(), "selfish")
    version = flow_version_save(flow=flow, graph=parent_graph("selfish"), user=owner)
    flow = flow_publish(flow=flow, version=version, user=owner)
    run = wait_for_run(start(flow, {"message": "hi"}, owner).id, timeout=60)
    assert run.status == RunStatus.FAILED
    assert "sub-flows nest deeper than 5 runs" in run.error
    assert Run.objects.filter(flow=flow).count() == 6


def test_a_sub_flow_must_be_published_and_take_its_inputs(db, workspace, owner):
    flow_create(workspace=workspace, slug="draft", name="draft", graph=child_graph(), user=owner)
    with pytest.raises(GraphError) as caught:
        publish(workspace, owner, parent_graph("draft"), "parent")
    assert caught.value.errors == [
        "node 'call': flow 'draft' is not a published flow of this workspace"
    ]
    publish(workspace, owner, child_graph(), "child")
    graph = parent_graph()
    graph["nodes"][1]["config"]["inputs"] = {"mesage": "{{input_1.message}}"}
    graph["nodes"][1]["config"]["outputs"] = [{"name": "answer"}]
    with pytest.raises(GraphError) as caught:
        publish(workspace, owner, graph, "parent")
    assert caught.value.errors == [
        "node 'call': flow 'child' has no input 'mesage'",
        "node 'call': flow 'child' needs the input 'message'",
        "node 'call': flow 'child' has no output 'answer'",
        "node 'call': has no output port 'text'",  # the edge to the output node
    ]
