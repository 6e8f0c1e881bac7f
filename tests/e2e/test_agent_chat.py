"""Chatting with a published agent in a real browser: from the Apps page to its chat, where the
agent's tool call shows as a collapsed line (arguments, then result) above the streamed answer.
The agent's model is a scripted OpenAI server at the network boundary."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from agents.services import agent_create, agent_publish
from tests.agents.scripted_model import ScriptedModel, answer, calls, remote_model
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server():
    scripted = ScriptedModel().start()
    yield scripted
    scripted.stop()


def test_the_agents_chat_shows_its_tool_call_and_streams_its_answer(
    worker_may_call_loopback, page, server, workspace, owner
):
    remote_model(server, workspace, owner)
    spec = {"model": "remote", "tools": [{"tool": "calculator"}], "opening": "Ask me sums."}
    agent = agent_create(workspace=workspace, name="Maths", slug="maths", spec=spec, actor=owner)
    agent_publish(agent=agent, actor=owner)
    server.plan(calls(("calculator", '{"expression": "6 * 7"}')), answer("It is ", "42."))
    log_in(page, "olive", PASSWORD)

    page.goto("/apps/")
    page.get_by_role("link", name="Chat with Maths").click()
    expect(page).to_have_url(re.compile(r"/chat/agent-maths/$"))
    expect(page.get_by_text("Ask me sums.")).to_be_visible()
    page.get_by_label("Message").fill("What is 6 × 7?")
    page.get_by_role("button", name="Send").click()

    bubble = page.locator(".bubble.assistant").last
    expect(bubble.locator(".text")).to_have_text("It is 42.")
    expect(bubble).to_have_class(re.compile(r"\bdone\b"))
    step = bubble.locator("details.agent-step")
    expect(step.locator("summary")).to_have_text("Called calculator")
    step.locator("summary").click()
    expect(step.locator("pre").first).to_contain_text('"expression": "6 * 7"')
    expect(step.locator("pre.tool-result")).to_contain_text("42")
