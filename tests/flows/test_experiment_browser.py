"""The A/B split in a real browser: an owner starts a 50/50 experiment on the flow's page, new
conversations on the chat page land in both arms and each keeps its arm across turns, and the
experiment's page shows both arms."""

from __future__ import annotations

import copy
import re

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import allow_orm_beside_playwright, browser, log_in, page  # noqa: F401

pytestmark = pytest.mark.e2e

# Conversations to open at most: each lands in b with probability 1/2, so both arms are seen
# within this many with probability 1 - 2^-11.
MAX_CONVERSATIONS = 12


def say(page, message: str):  # noqa: F811 (the page fixture's name)
    """Send ``message`` and wait for its answer to end; the answer's text."""
    answers = page.locator(".bubble.assistant")
    before = answers.count()
    page.get_by_label("Message").fill(message)
    page.get_by_role("button", name="Send").click()
    expect(answers).to_have_count(before + 1)
    answer = answers.nth(before)
    expect(answer.locator(".meta")).to_contain_text("Done")
    # The answer's text may fill in just after "Done" shows (one CI run read it empty): wait.
    expect(answer.locator(".text")).to_contain_text(message)
    return answer.locator(".text").text_content().strip()


def test_a_50_50_experiment_splits_new_conversations_and_each_keeps_its_arm(
    page,  # noqa: F811
    owner,
    echo_model,
    make_flow,
):
    from conversations.models import Conversation
    from flows.models import Run
    from flows.services import flow_version_save

    flow = make_flow(echo_model)
    graph = copy.deepcopy(flow.published_version.graph)
    graph["nodes"][1]["config"]["prompt"] = "B: {{message}}"  # b's answers say so
    flow_version_save(flow=flow, graph=graph, user=owner, note="prefixed answers")
    log_in(page, "olive", PASSWORD)

    page.goto(f"/flows/{flow.slug}/")
    panel = page.locator("#experiment")
    panel.get_by_label("Version b").select_option("2")
    panel.get_by_label("Share of traffic for b (%)").fill("50")
    panel.get_by_role("button", name="Start experiment").click()
    expect(page.locator("#experiment-running")).to_contain_text("serves 50% of the conversations")
    page.locator("#experiment").screenshot(path="/tmp/experiment-panel.png")

    seen: dict[str, str] = {}
    for n in range(MAX_CONVERSATIONS):
        page.goto(f"/chat/{flow.slug}/")
        first = say(page, f"hello number {n}")
        expect(page).to_have_url(re.compile(rf"/chat/{flow.slug}/c/[0-9a-f-]{{36}}/$"))
        second = say(page, f"again number {n}")
        arm = "b" if first.startswith("B: ") else "a"
        # Both turns of a conversation come from the same version.
        assert first == ("B: " if arm == "b" else "") + f"hello number {n}"
        assert second == ("B: " if arm == "b" else "") + f"again number {n}"
        seen[page.url] = arm
        if n >= 3 and set(seen.values()) == {"a", "b"}:
            break
    assert set(seen.values()) == {"a", "b"}, seen

    for conversation in Conversation.objects.filter(flow=flow):
        runs = Run.objects.filter(id__in=conversation.messages.values("run"))
        assert {(r.arm, r.flow_version.number) for r in runs} in ({("a", 1)}, {("b", 2)})
        assert seen[next(u for u in seen if str(conversation.id) in u)] == runs.first().arm

    page.goto(f"/flows/{flow.slug}/")
    page.locator("#experiment").get_by_role("link", name="See each arm's figures").click()
    expect(page).to_have_url(re.compile(rf"/flows/{flow.slug}/experiment/$"))
    expect(page.locator("h1")).to_contain_text("A/B experiment")
    arms = page.locator("#experiment-arms")
    expect(arms.locator("#arm-a")).to_have_text("a · v1")
    expect(arms.locator("#arm-b")).to_have_text("b · v2")
    runs_row = arms.locator("#row-runs td.num")
    expect(runs_row.nth(0)).to_have_text(str(Run.objects.filter(arm="a").count()))
    expect(runs_row.nth(1)).to_have_text(str(Run.objects.filter(arm="b").count()))
    expect(arms.locator("#row-feedback")).to_contain_text("not enough data yet")
    page.screenshot(path="/tmp/experiment-arms.png")
