"""Tool calls that need a person's approval: the agent node makes its run wait (``waiting``,
with the call on ``run.waiting``) until someone who may run the flow approves or rejects it over
the API or on the run's page; an approved call runs once, even when its worker is killed after
it, and a rejected one is answered to the model with the person's reason. With the real worker,
a scripted model server and a local HTTP API that counts the calls it receives (the network
boundaries)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from flows.models import NodeResult, NodeStatus, Run, RunSource, RunStatus
from flows.runtime import dispatch
from flows.services import flow_create, flow_publish, run_create
from tests.agents.scripted_model import answer, calls
from tests.agents.test_agent_node import agent_graph, published_agent
from tests.agents.test_tools_http_request import _Server
from tests.flows.helpers import logged_events, wait_for_event, wait_for_run
from tests.flows.test_api import scoped_key
from tests.flows.test_waiting_nodes import wait_for_status

CALCULATE = ("calculator", '{"expression": "6 * 7"}')


@pytest.fixture(scope="module")
def shop():
    """A local API whose orders the agent places (a call with effects): it counts them."""
    api = _Server()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    yield api
    api.shutdown()
    api.server_close()


def order_tool() -> dict:
    return {
        "tool": "http_request",
        "name": "order",
        "config": {"hosts": ["127.0.0.1"], "methods": ["POST"]},
        "needs_approval": True,
    }


def order_call(shop) -> tuple[str, str]:
    url = f"http://127.0.0.1:{shop.server_address[1]}/orders"
    body = {"item": "tea", "count": 2}
    return ("order", json.dumps({"url": url, "method": "POST", "body": body}))


def start(workspace, owner, api_key=None) -> Run:
    flow = flow_create(
        workspace=workspace, slug="shopper", name="Shopper", graph=agent_graph("maths"), user=owner
    )
    flow = flow_publish(flow=flow, user=owner)
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "Order two teas."},
        source=RunSource.API if api_key else RunSource.STUDIO,
        user=None if api_key else owner,
        api_key=api_key,
    )
    return wait_for_status(run.id, RunStatus.WAITING)


def answer_over_api(live_studio, run, headers, **body):
    return httpx.post(
        f"{live_studio}/api/v1/runs/{run.id}/answer",
        json={"node": "agent_1", **body},
        headers=headers,
        timeout=30,
    )


def test_a_call_waits_for_approval_and_runs_once_when_approved_over_the_api(
    model, server, shop, live_studio, workspace, owner
):
    published_agent(workspace, owner, tools=[order_tool()])
    server.plan(calls(order_call(shop)), answer("Ordered ", "two teas."))
    shop.received.clear()
    row, headers = scoped_key(workspace, owner, flow_access="run")

    run = start(workspace, owner, api_key=row)

    waiting = wait_for_event(run.id, "run.waiting")
    asked = waiting["data"]
    assert waiting["node"] == "agent_1"
    assert (asked["kind"], asked["tool"], asked["step"]) == ("approval", "order", 1)
    assert asked["arguments"]["body"] == {"item": "tea", "count": 2}
    assert asked["key"] == f"{run.id}:agent_1:1:0"
    stored = NodeResult.objects.get(run=run, node_id="agent_1")
    assert stored.status == NodeStatus.WAITING
    assert stored.details["agent_state"]["waiting_on"] == asked["key"]
    assert shop.received == []  # nothing was ordered before the approval
    assert len(server.chats()) == 1

    approved = answer_over_api(live_studio, run, headers, approve=True, key=asked["key"])
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] in ("running", "succeeded")
    run = wait_for_run(run.id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "Ordered two teas.", "steps": 2, "outcome": "done"}
    assert len(shop.received) == 1
    assert shop.received[0]["key"] == asked["key"]  # the call's idempotency key
    types = [e["type"] for e in logged_events(run.id)]
    assert types.count("tool.call") == 1 and types.count("tool.result") == 1
    assert types.count("approval.needed") == 1 and types.count("run.waiting") == 1
    assert "tea" in str(server.messages(1)[-1]["content"])  # the model read the shop's answer

    # Answered already: refused clearly, nothing runs again.
    again = answer_over_api(live_studio, run, headers, approve=True, key=asked["key"])
    assert again.status_code == 409, again.text
    assert "not waiting for an answer now" in again.json()["error"]["message"]
    assert len(shop.received) == 1


def test_a_rejected_call_is_not_made_and_the_model_answers_without_it(
    model, server, shop, live_studio, workspace, owner
):
    published_agent(workspace, owner, tools=[order_tool()])
    server.plan(calls(order_call(shop)), answer("I did not order anything."))
    shop.received.clear()
    row, headers = scoped_key(workspace, owner, flow_access="run")
    run = start(workspace, owner, api_key=row)

    not_a_decision = answer_over_api(live_studio, run, headers, approve="yes")
    assert not_a_decision.status_code == 400
    rejected = answer_over_api(live_studio, run, headers, approve=False, reason="tea is sold out")
    assert rejected.status_code == 200, rejected.text
    run = wait_for_run(run.id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["text"] == "I did not order anything."
    assert shop.received == []
    told = str(server.messages(1)[-1]["content"])
    assert "refused it: tea is sold out" in told
    result = next(e for e in logged_events(run.id) if e["type"] == "tool.result")
    assert result["data"]["details"] == {"error": "rejected"}


def test_a_stale_or_foreign_answer_is_refused_and_the_run_keeps_waiting(
    model, server, shop, live_studio, workspace, owner
):
    published_agent(workspace, owner, tools=[order_tool()])
    server.plan(calls(order_call(shop)), answer("Ordered."))
    shop.received.clear()
    row, headers = scoped_key(workspace, owner, flow_access="run")
    _, bystander = scoped_key(workspace, owner, flow_access="run")
    _, flowless = scoped_key(workspace, owner, flow_access="none")
    run = start(workspace, owner, api_key=row)

    stale = answer_over_api(live_studio, run, headers, approve=True, key=f"{run.id}:agent_1:0:9")
    assert stale.status_code == 409
    assert "no longer waiting" in stale.json()["error"]["message"]
    # Another key's run is out of reach; a key without flows cannot answer.
    assert answer_over_api(live_studio, run, bystander, approve=True).status_code == 404
    assert answer_over_api(live_studio, run, flowless, approve=True).status_code == 403
    assert answer_over_api(live_studio, run, {}, approve=True).status_code == 401

    assert Run.objects.get(id=run.id).status == RunStatus.WAITING
    assert NodeResult.objects.get(run=run, node_id="agent_1").status == NodeStatus.WAITING
    assert shop.received == []
    assert answer_over_api(live_studio, run, headers, approve=True).status_code == 200
    assert wait_for_run(run.id).status == RunStatus.SUCCEEDED


def test_on_the_run_page_only_who_may_run_the_flow_approves(
    model, server, shop, workspace, owner, viewer, outsider, client
):
    published_agent(workspace, owner, tools=[order_tool()])
    server.plan(calls(order_call(shop)), answer("Ordered."))
    shop.received.clear()
    run = start(workspace, owner)
    url = f"/runs/{run.id}/answer/agent_1"

    client.force_login(viewer)
    page = client.get(f"/runs/{run.id}/")
    assert "Approve a tool call" in page.text and "&quot;tea&quot;" in page.text
    assert "Only someone who may run this flow can approve or reject." in page.text
    assert client.post(url, {"approve": "true"}).status_code == 403
    client.force_login(outsider)
    assert client.post(url, {"approve": "true"}).status_code == 404
    assert shop.received == []

    client.force_login(owner)
    assert client.get(url).status_code == 405
    page = client.post(url, {"approve": "true"}, follow=True)
    assert "Approved: the call runs" in page.text
    run = wait_for_run(run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(shop.received) == 1
    assert client.post(url, {"approve": "true"}).status_code == 404  # no longer waiting


def test_a_worker_killed_after_the_approval_does_not_make_the_call_twice(
    model, server, shop, live_studio, worker, workspace, owner
):
    published_agent(workspace, owner, tools=[order_tool()])
    stalled = answer("never heard")
    stalled.delay_s = 20  # the model call after the approved call is cut off by the kill
    server.plan(calls(order_call(shop)), stalled, answer("Ordered two teas."))
    shop.received.clear()
    row, headers = scoped_key(workspace, owner, flow_access="run")
    run = start(workspace, owner, api_key=row)

    assert answer_over_api(live_studio, run, headers, approve=True).status_code == 200
    # A second delivery of the resumed node's task finds it claimed: it does nothing.
    dispatch.execute(run.id, "agent_1", NodeResult.objects.get(run=run, node_id="agent_1").queue)
    wait_for_event(run.id, "tool.result")
    deadline = time.monotonic() + 20
    while len(server.chats()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(shop.received) == 1
    worker.kill()

    worker.start()  # its reaper finds the node whose heartbeat stopped and dispatches it again
    run = wait_for_run(run.id, timeout=60)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["text"] == "Ordered two teas."
    assert len(shop.received) == 1  # the order was placed once
    types = [e["type"] for e in logged_events(run.id)]
    assert types.count("tool.call") == 1 and types.count("tool.result") == 1
    assert len(server.chats()) == 3
