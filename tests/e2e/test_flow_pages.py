"""The flow pages in a real browser: the starter gallery with a picture of each graph, chosen by
keyboard; a published flow's API panel and its copy buttons; the graph JSON under "Advanced";
and greyed buttons that say why."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from flows.starters import starters
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def test_the_gallery_shows_a_card_with_a_picture_per_starter_chosen_by_keyboard(
    browser, live_studio, owner, echo_model
):
    context = browser.new_context(base_url=live_studio, viewport={"width": 390, "height": 844})
    page = context.new_page()
    log_in(page, "olive", PASSWORD)

    page.goto("/flows/new")

    cards = page.locator(".starter-card")
    expect(cards).to_have_count(len(starters()))
    assert len(starters()) >= 8
    expect(cards.nth(5).locator("svg.graph-picture g.gp-node")).to_have_count(3)
    box = cards.nth(0).locator("svg.graph-picture").bounding_box()
    assert box and box["height"] > 40 and box["width"] > 200  # drawn, not collapsed
    # No card spills out of a phone's width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    blank = page.get_by_role("radio", name="Blank")
    expect(blank).to_be_checked()
    blank.focus()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("radio", name="Chat with a knowledge base")).to_be_checked()
    expect(page.get_by_role("radio", name="Chat with a knowledge base")).to_be_focused()
    context.close()


def test_the_api_panel_copies_a_request_and_the_json_is_advanced(
    browser, live_studio, owner, make_flow, echo_model
):
    flow = make_flow(echo_model)
    context = browser.new_context(base_url=live_studio, viewport={"width": 1100, "height": 760})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    log_in(page, "olive", PASSWORD)

    page.goto(f"/flows/{flow.slug}/")

    panel = page.locator("#api")
    expect(panel.get_by_role("heading", name="API")).to_be_visible()
    expect(panel.locator("#api-curl")).to_contain_text(
        f"{live_studio}/api/v1/flows/{flow.slug}/runs"
    )
    panel.locator('button[data-copy="api-curl"]').click()
    expect(panel.locator("#api-curl-copied")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(f"curl {live_studio}/api/v1/flows/{flow.slug}/runs")
    # The raw graph JSON waits, closed, under "Advanced".
    graph = page.locator("textarea#graph")
    expect(graph).to_be_hidden()
    page.get_by_text("Advanced: edit the graph as JSON").click()
    expect(graph).to_be_visible()
    # Nothing new to publish: the greyed button says why, visibly.
    publish = page.get_by_role("button", name="Publish v1")
    expect(publish).to_be_disabled()
    expect(publish).to_have_accessible_description("Nothing new to publish: v1 is live")
    expect(page.locator("#why-no-publish")).to_be_visible()
    context.close()
