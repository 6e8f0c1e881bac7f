"""Approving an agent's tool call in a real browser: the run's page, open while the agent works,
shows the call waiting for approval (its tool and arguments) as soon as the run waits; the
person approves it from the keyboard and the page follows the run to the agent's answer."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from flows.models import RunSource
from flows.services import flow_create, flow_publish, run_create
from tests.agents.scripted_model import ScriptedModel, answer, calls, remote_model
from tests.agents.test_agent_node import agent_graph, published_agent
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server():
    scripted = ScriptedModel().start()
    yield scripted
    scripted.stop()


@pytest.fixture
def model(worker_may_call_loopback, server, workspace, owner):
    return remote_model(server, workspace, owner)


def test_a_person_approves_a_tool_call_on_the_run_page(page, model, server, workspace, owner):
    published_agent(workspace, owner, tools=[{"tool": "calculator", "needs_approval": True}])
    slow_call = calls(("calculator", '{"expression": "6 * 7"}'))
    slow_call.delay_s = 1  # the page is open before the run waits
    server.plan(slow_call, answer("Six times seven is 42."))
    flow = flow_create(
        workspace=workspace, slug="maths-flow", name="Maths", graph=agent_graph(), user=owner
    )
    flow = flow_publish(flow=flow, user=owner)
    log_in(page, "olive", PASSWORD)
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "6 × 7?"},
        source=RunSource.STUDIO,
        user=owner,
    )

    page.goto(f"/runs/{run.id}/")
    card = page.get_by_role("region", name="Waiting for your approval")
    expect(card).to_contain_text("calculator")
    expect(card.get_by_label("Arguments")).to_have_text('{\n  "expression": "6 * 7"\n}')
    expect(page.locator("#trace .run-status")).to_contain_text("Waiting")

    approve = card.get_by_role("button", name="Approve")
    approve.focus()
    page.keyboard.press("Enter")

    expect(page.get_by_text("Approved: the call runs")).to_be_visible()
    trace = page.locator("#trace")
    expect(trace.locator(".run-status")).to_contain_text("Succeeded")
    expect(trace).to_contain_text("Six times seven is 42.")
    expect(page.get_by_role("region", name="Waiting for your approval")).to_have_count(0)
    assert "42" in str(server.messages(1)[-1]["content"])  # the approved call ran
