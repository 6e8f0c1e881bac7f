"""The agent builder's live preview in a real browser: a message to the saved draft shows each
step as it streams (the tool call with its arguments, its result, the answer), earlier turns
are the next message's history, and a tool call that needs approval is approved in place, in
the preview and on a published agent's chat page. The model is a scripted OpenAI server at the
network boundary."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from agents.services import agent_create, agent_publish
from conversations.widget import EmbedSettings, embed_settings_change
from tests.agents.scripted_model import ScriptedModel, answer, calls, remote_model
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.e2e.test_widget import HostSite

pytestmark = pytest.mark.e2e

CALCULATE = ("calculator", '{"expression": "6 * 7"}')


@pytest.fixture(scope="module")
def server():
    scripted = ScriptedModel().start()
    yield scripted
    scripted.stop()


@pytest.fixture
def model(worker_may_call_loopback, server, workspace, owner):
    return remote_model(server, workspace, owner)


def maths_agent(workspace, owner, needs_approval: bool = False):
    spec = {
        "instructions": {"text": "Compute with the calculator."},
        "model": "remote",
        "tools": [{"tool": "calculator", "needs_approval": needs_approval}],
    }
    return agent_create(workspace=workspace, name="Maths", slug="maths", spec=spec, actor=owner)


def thinking(thought: str, *planned: tuple[str, str]):
    """Tool calls after some text of the model's own: the thought, streamed first."""
    reply = calls(*planned)
    reply.events.insert(
        1,
        {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": thought}, "finish_reason": None}],
        },
    )
    return reply


def send(page, message: str):
    page.get_by_label("Preview message").fill(message)
    page.get_by_role("button", name="Send").click()
    return page.locator("#preview-messages .bubble.assistant").last


def test_the_preview_streams_the_steps_of_the_saved_draft(page, model, server, workspace, owner):
    maths_agent(workspace, owner)
    server.plan(
        thinking("I will use the calculator.", CALCULATE),
        answer("Six times seven ", "is 42."),
        answer("Doubled: 84."),
    )
    log_in(page, "olive", PASSWORD)
    page.goto("/agents/maths/")
    preview = page.get_by_role("complementary", name="Preview")

    bubble = send(page, "What is 6 × 7?")

    expect(bubble.locator(".text")).to_have_text("Six times seven is 42.")
    expect(bubble).to_have_class(re.compile(r"\bdone\b"))
    expect(bubble.locator(".preview-step")).to_have_text(["Step 1", "Step 2"])
    expect(bubble.locator(".preview-thought")).to_have_text("I will use the calculator.")
    step = bubble.locator("details.agent-step")
    expect(step).to_have_attribute("open", "")
    expect(step.locator("summary")).to_have_text("Called calculator")
    expect(step.locator("pre").first).to_have_text('{\n  "expression": "6 * 7"\n}')
    expect(step.locator("pre.tool-result")).to_contain_text("42")

    second = send(page, "And doubled?")
    expect(second.locator(".text")).to_have_text("Doubled: 84.")
    told = [(m["role"], m["content"]) for m in server.messages(2)[1:]]
    assert told == [
        ("user", "What is 6 × 7?"),
        ("assistant", "Six times seven is 42."),
        ("user", "And doubled?"),
    ]

    preview.get_by_role("button", name="New conversation").click()
    expect(page.locator("#preview-messages .bubble")).to_have_count(0)


def test_a_call_needing_approval_is_approved_in_the_preview(page, model, server, workspace, owner):
    maths_agent(workspace, owner, needs_approval=True)
    server.plan(calls(CALCULATE), answer("It is 42."))
    log_in(page, "olive", PASSWORD)
    page.goto("/agents/maths/")

    bubble = send(page, "6 × 7?")

    card = bubble.get_by_role("region", name="Waiting for approval")
    expect(card).to_contain_text("calculator")
    expect(card.get_by_label("Arguments")).to_have_text('{\n  "expression": "6 * 7"\n}')
    assert len(server.chats()) == 1  # nothing runs before the person answers
    card.get_by_role("button", name="Approve").click()

    expect(bubble.locator(".text")).to_have_text("It is 42.")
    expect(card).to_contain_text("Approved: the call runs.")
    expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    assert "42" in str(server.messages(1)[-1]["content"])  # the approved call ran


def test_a_call_needing_approval_is_approved_from_a_published_agents_chat(
    page, model, server, workspace, owner
):
    agent = maths_agent(workspace, owner, needs_approval=True)
    agent_publish(agent=agent, actor=owner)
    server.plan(calls(CALCULATE), answer("It is 42."))
    log_in(page, "olive", PASSWORD)
    page.goto("/chat/agent-maths/")

    page.get_by_label("Message").fill("6 × 7?")
    page.get_by_role("button", name="Send").click()

    bubble = page.locator("#messages .bubble.assistant").last
    card = bubble.get_by_role("region", name="Waiting for approval")
    expect(card.get_by_label("Arguments")).to_have_text('{\n  "expression": "6 * 7"\n}')
    card.get_by_label("Reason (optional)").fill("fine")
    card.get_by_role("button", name="Approve").click()
    expect(bubble.locator(".text")).to_have_text("It is 42.")
    expect(card).to_contain_text("Approved")


def test_the_widget_says_a_call_waits_for_approval_without_offering_it(
    browser, live_studio, model, server, workspace, owner
):
    agent = maths_agent(workspace, owner, needs_approval=True)
    agent_publish(agent=agent, actor=owner)
    server.plan(calls(CALCULATE), answer("It is 42."))
    settings = embed_settings_change(
        flow=agent.flow,
        user=owner,
        embed=EmbedSettings(
            enabled=True,
            allowed_origins=[],
            title="Maths help",
            colour="#aa3300",
            sign_in_required=False,
            remote_images=False,
            requests_per_minute=None,
            tokens_per_day=None,
        ),
    )
    url = f"{live_studio}/embed/{settings.embed_id}/"
    host = HostSite(
        f'<script src="{live_studio}/static/conversations/embed.js" '
        f'data-studio-widget="{url}" defer></script>'
    )
    settings.allowed_origins = [host.origin]
    settings.save(update_fields=["allowed_origins"])
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    try:
        page.goto(f"{host.origin}/")
        page.get_by_role("button", name="Open the chat").click()
        chat = page.frame_locator("iframe[title=Chat]")
        chat.get_by_label("Message").fill("6 × 7?")
        chat.get_by_role("button", name="Send").click()

        card = chat.get_by_role("region", name="Waiting for approval")
        expect(card).to_contain_text("The answer waits for a person's approval of this call.")
        expect(card.get_by_label("Arguments")).to_have_text('{\n  "expression": "6 * 7"\n}')
        expect(card.get_by_role("button")).to_have_count(0)  # visitors cannot approve
    finally:
        context.close()
        host.close()


def test_a_limit_in_the_preview_says_which(page, model, server, workspace, owner):
    agent = maths_agent(workspace, owner)
    agent.draft["limits"]["max_steps"] = 1
    agent.save(update_fields=["draft"])
    server.plan(calls(CALCULATE), answer("never asked"))
    log_in(page, "olive", PASSWORD)
    page.goto("/agents/maths/")

    bubble = send(page, "6 × 7?")

    expect(bubble.locator(".preview-limit")).to_have_text(
        "Stopped at a limit: steps per run (see the answer)."
    )
    expect(bubble.locator(".text")).to_contain_text("limit of 1 steps")
    expect(bubble).to_have_class(re.compile(r"\bdone\b"))
