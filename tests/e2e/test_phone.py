"""A phone-sized screen (390 x 844): the top bar folds into a Menu button, and no page scrolls
sideways (wide tables scroll inside their own box)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

# For the failure message: the elements that stick out past the screen's right edge.
STICKING_OUT = """Array.from(document.querySelectorAll("body *"))
  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
  .slice(0, 8).map((e) => `${e.tagName}.${e.className}`)"""
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser, live_studio):
    context = browser.new_context(base_url=live_studio, viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def test_the_navigation_folds_into_a_menu_button(phone, owner):
    log_in(phone, "olive", PASSWORD)
    menu = phone.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(phone.get_by_role("button", name="Build")).to_be_hidden()

    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    phone.keyboard.press("Escape")
    expect(phone.get_by_role("button", name="Build")).to_be_hidden()
    menu.click()
    phone.get_by_role("button", name="Admin").click()
    phone.get_by_role("link", name="API keys").click()
    phone.wait_for_url("**" + reverse("workspaces:key-list"))
    expect(phone.get_by_role("button", name="Admin")).to_be_hidden()


def test_no_page_scrolls_sideways(phone, workspace, owner, echo_model, make_flow, embedding_model):
    from knowledge.services.bases import BaseSettings, kb_create

    make_flow(echo_model, slug="a-flow-with-a-rather-long-slug-for-a-small-screen")
    base = kb_create(
        workspace=workspace, slug="handbook", values=BaseSettings(name="Handbook"), actor=owner
    )
    log_in(phone, "olive", PASSWORD)
    pages = [
        reverse("conversations:home"),
        reverse("flows:flow-list"),
        reverse("knowledge:kb-list"),
        reverse("knowledge:kb-detail", args=[base.id]),
        reverse("knowledge:kb-create"),
        reverse("catalog:model-list"),
        reverse("workspaces:member-list"),
    ]
    too_wide = {}
    for url in pages:
        phone.goto(url)
        width = phone.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide[url] = (width, phone.evaluate(STICKING_OUT))
    assert not too_wide, f"pages wider than the phone: {too_wide}"
