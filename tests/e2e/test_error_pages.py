"""The 404 page in a browser: inside the studio's layout, with a way back and a way home."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def test_a_missing_page_offers_the_way_back_and_home(page, owner):
    log_in(page, "olive", PASSWORD)
    page.goto(reverse("flows:flow-list"))
    response = page.goto("/no-such-page/")
    assert response is not None and response.status == 404

    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.get_by_role("button", name="Build")).to_be_visible()  # the navigation is there
    page.get_by_role("button", name="Go back").click()
    page.wait_for_url("**" + reverse("flows:flow-list"))

    page.goto("/flows/no-such-flow/")
    page.locator("main").get_by_role("link", name="Home").click()
    page.wait_for_url("**" + reverse("conversations:home"))
