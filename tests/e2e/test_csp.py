"""The Content-Security-Policy in a real browser: the main pages work without one violation
(scripts, styles, the run WebSocket), and what the inline handlers did still happens: a delete
asks first, the workspace menu switches on change."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from flows.models import Flow
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

# Records what the browser refused under the policy; Playwright's init scripts are not subject
# to the page's policy, so this one runs on every page before the page's own scripts.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}`);
});
"""


@pytest.fixture
def watched(page):
    """The page, and the policy violations and console errors of every document it loads."""
    violations: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            violations.append(f"console: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )

    def collect() -> None:
        violations.extend(page.evaluate("window.__violations || []"))
        page.evaluate("window.__violations = []")

    return page, violations, collect


def test_the_main_pages_work_under_the_policy(
    watched, workspace, owner, echo_model, make_flow, embedding_model
):
    from knowledge.services.bases import BaseSettings, kb_create

    page, violations, collect = watched
    make_flow(echo_model, slug="assistant")
    base = kb_create(
        workspace=workspace, slug="handbook", values=BaseSettings(name="Handbook"), actor=owner
    )
    log_in(page, "olive", PASSWORD)

    for url, ready in [
        (reverse("conversations:home"), page.locator("main h1")),
        (reverse("conversations:apps"), page.get_by_role("link", name="Chat").first),
        (reverse("flows:flow-new"), page.locator(".starter-card").first),
        (reverse("flows:flow-detail", args=["assistant"]), page.locator("main h1")),
        (reverse("knowledge:kb-create"), page.locator("main form")),
        (reverse("workspaces:audit-list"), page.locator("main")),
        (reverse("flows:flow-list"), page.get_by_role("link", name="Assistant")),
        (reverse("flows:flow-editor", args=["assistant"]), page.locator(".react-flow__node").first),
        (reverse("catalog:model-list"), page.get_by_role("link", name="Echo", exact=True)),
        (reverse("knowledge:kb-list"), page.get_by_role("link", name="Handbook").first),
        (reverse("knowledge:kb-detail", args=[base.id]), page.locator("main h1")),
        (reverse("catalog:usage"), page.locator("main")),
        (reverse("catalog:playground"), page.locator("main")),
        (reverse("workspaces:member-list"), page.locator("main")),
    ]:
        page.goto(url)
        expect(ready).to_be_visible()
        page.wait_for_load_state("networkidle")
        collect()
        assert not violations, f"{url}: {violations}"

    # The chat page streams its answer over the run WebSocket (connect-src).
    page.goto(reverse("conversations:chat", args=["assistant"]))
    page.get_by_label("Message").fill("under the policy")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".bubble.assistant .text").last).to_have_text("under the policy")
    collect()
    assert not violations, violations


def test_a_delete_still_asks_first(watched, owner, echo_model, make_flow):
    page, violations, collect = watched
    make_flow(echo_model, slug="assistant")
    log_in(page, "olive", PASSWORD)
    asked: list[str] = []

    page.goto(reverse("flows:flow-detail", args=["assistant"]))
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Delete").click()
    page.wait_for_timeout(500)
    assert asked == ["Delete this flow with all its versions and runs?"]
    assert Flow.objects.filter(slug="assistant").exists()  # dismissed: nothing sent

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url("**/flows/")
    assert not Flow.objects.filter(slug="assistant").exists()
    collect()
    assert not violations, violations


def test_the_workspace_menu_switches_on_change(watched, owner):
    from workspaces.services import member_add, workspace_create

    page, violations, collect = watched
    second = workspace_create(slug="second", name="Second")
    member_add(workspace=second, user=owner, role="owner")
    log_in(page, "olive", PASSWORD)

    with page.expect_navigation():  # the change alone sends the form
        page.get_by_label("Workspace").select_option(label="Second")
    # The page came back from the server with the new workspace chosen.
    expect(page.locator("select[name=workspace_id] option[selected]")).to_have_text("Second")
    collect()
    assert not violations, violations
