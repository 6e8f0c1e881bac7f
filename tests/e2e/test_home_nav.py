"""A newcomer's way in: the home page's next steps after logging in, the Apps page that lists
what they may chat with, and the top bar's grouped menus."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def test_home_offers_next_steps_after_login(page, owner, echo_model, make_flow):
    make_flow(echo_model, slug="assistant")
    log_in(page, "olive", PASSWORD)

    expect(page.get_by_role("heading", level=1)).to_contain_text("Build LLM apps")
    steps = page.locator(".next-steps")
    for name in ["Create a flow", "Add a knowledge base", "Make an API key", "All starters"]:
        expect(steps.get_by_role("link", name=name)).to_be_visible()
    expect(steps.get_by_role("link", name="Open Assistant in the editor")).to_be_visible()
    starter = steps.locator("a[href*='#starter-']").first
    expect(starter).to_have_attribute("href", re.compile("^" + reverse("flows:flow-new")))
    steps.get_by_role("link", name="Chat with Assistant").click()
    page.wait_for_url("**" + reverse("conversations:chat", args=["assistant"]))


def test_home_without_a_published_flow_says_to_publish_one(page, owner, echo_model, make_flow):
    make_flow(echo_model, slug="draft", publish=False)
    log_in(page, "olive", PASSWORD)

    steps = page.locator(".next-steps")
    expect(steps).to_contain_text("No flow is published yet")
    expect(steps.get_by_role("link", name="Publish a flow")).to_have_attribute(
        "href", reverse("flows:flow-list")
    )


def test_apps_in_the_navigation_list_the_published_flows(page, owner, echo_model, make_flow):
    make_flow(echo_model, slug="assistant")
    make_flow(echo_model, slug="draft", publish=False)
    log_in(page, "olive", PASSWORD)

    page.get_by_role("button", name="Operate").click()
    page.get_by_role("link", name="Apps", exact=True).click()
    table = page.locator("table.apps")
    expect(table).to_contain_text("Assistant")
    expect(table).not_to_contain_text("Draft")
    expect(table.get_by_role("link", name="Open Assistant")).to_have_attribute(
        "href", reverse("flows:flow-detail", args=["assistant"])
    )
    table.get_by_role("link", name="Chat with Assistant").click()
    page.wait_for_url("**" + reverse("conversations:chat", args=["assistant"]))


def test_apps_page_shows_a_limited_member_only_what_is_shared(
    client, make_member, echo_model, make_flow
):
    make_flow(echo_model, slug="assistant")
    client.force_login(make_member("editor", limited=True))
    response = client.get(reverse("conversations:apps"))
    assert response.status_code == 200
    assert "Assistant" not in response.content.decode()
    assert "No app is published yet" in response.content.decode()


def test_nav_groups_open_and_close_like_menus(page, owner):
    log_in(page, "olive", PASSWORD)
    page.mouse.move(0, 700)  # away from the top bar: pointing at a group opens it too
    models = page.get_by_role("button", name="Models")
    catalog = page.get_by_role("link", name="Catalog", exact=True)
    expect(models).to_have_attribute("aria-expanded", "false")
    expect(catalog).to_be_hidden()

    models.focus()
    page.keyboard.press("Enter")
    expect(models).to_have_attribute("aria-expanded", "true")
    expect(catalog).to_be_visible()
    page.keyboard.press("Escape")
    expect(catalog).to_be_hidden()
    expect(models).to_be_focused()

    # Opening one group closes the other; the current page's link is marked.
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("link", name="API keys").click()
    page.wait_for_url("**" + reverse("workspaces:key-list"))
    page.mouse.move(0, 700)
    page.get_by_role("button", name="Admin").click()
    expect(page.get_by_role("link", name="API keys")).to_have_attribute("aria-current", "page")
    page.get_by_role("button", name="Build").click()
    expect(page.get_by_role("button", name="Admin")).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("link", name="Flows", exact=True)).to_be_visible()
