"""Screenshots of the main screens at desktop and phone sizes, for people to look at: `make
screenshots` writes them to var/screenshots/. Skipped unless STUDIO_SCREENSHOTS names the
folder, so the suite does not pay for them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("STUDIO_SCREENSHOTS"), reason="STUDIO_SCREENSHOTS names no folder"
    ),
]

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.mark.parametrize("size", SIZES)
def test_screenshots(size, browser, live_studio, workspace, owner, echo_model, make_flow):
    folder = Path(os.environ["STUDIO_SCREENSHOTS"])
    folder.mkdir(parents=True, exist_ok=True)
    make_flow(echo_model, slug="assistant")
    context = browser.new_context(base_url=live_studio, viewport=SIZES[size])
    page = context.new_page()
    page.set_default_timeout(20_000)

    def shot(name: str) -> None:
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(folder / f"{name}-{size}.png"), full_page=True)

    try:
        log_in(page, "olive", PASSWORD)
        shot("home")
        if size == "phone":
            page.get_by_role("button", name="Menu").click()
            page.get_by_role("button", name="Build").click()
            shot("home-menu")
        else:
            page.get_by_role("button", name="Build").click()
            page.screenshot(path=str(folder / f"home-menu-{size}.png"))

        page.goto(reverse("flows:flow-editor", args=["assistant"]))
        # On a phone the editor says it needs a larger screen, and offers the way back.
        ready = ".react-flow__node" if size == "desktop" else "main h1"
        expect(page.locator(ready).first).to_be_visible()
        shot("editor")

        page.goto(reverse("conversations:chat", args=["assistant"]))
        page.get_by_label("Message").fill("Hello, studio")
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".bubble.assistant .text").last).to_have_text("Hello, studio")
        shot("chat")

        page.goto(reverse("knowledge:kb-create"))
        shot("form")

        page.goto("/no-such-page/")
        shot("404")
    finally:
        context.close()
