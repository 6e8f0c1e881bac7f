"""The compare playground in a real browser: two answers stream side by side from the worker."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

# Model text with markup in it: the page must show it as text, never as HTML.
MESSAGE = "alpha beta <b>x</b> gamma delta"


def test_two_answers_stream_side_by_side_and_model_text_stays_text(page, owner, echo_model):
    from catalog.services import model_create

    # 300 ms a token: a wide window to see a partial answer even on a busy machine.
    slower = model_create(slug="slower", name="Slower", engine="echo", settings={"delay_ms": 300})
    log_in(page, "olive", PASSWORD)
    page.goto(f"/catalog/playground/?b={slower.id}")

    expect(page.get_by_label("Model B")).to_have_value(str(slower.id))  # preselected
    page.get_by_label("Model A").select_option(label="Echo (echo)")
    # Blank prompts come back with the form's error, swapped in place.
    page.get_by_label("Prompt", exact=True).fill("   ")
    page.get_by_role("button", name="Run").click()
    expect(page.locator(".field-error")).to_have_text("Type a prompt first.")

    page.get_by_label("Prompt", exact=True).fill(MESSAGE)
    page.get_by_label("Max tokens").fill("64")
    page.get_by_role("button", name="Run").click()

    fast = page.get_by_role("region", name="Answer of Echo")
    slow = page.get_by_role("region", name="Answer of Slower")
    expect(slow.locator(".answer")).to_contain_text("alpha")
    assert "delta" not in slow.locator(".answer").text_content()  # a partial answer: it streams
    expect(fast.locator(".answer")).to_have_text(MESSAGE)
    expect(slow.locator(".answer")).to_have_text(MESSAGE)
    for pane in (fast, slow):
        expect(pane).to_have_class(re.compile(r"\bdone\b"))
        expect(pane.locator(".answer b")).to_have_count(0)  # text, not a <b> element
        figures = pane.locator(".figures")
        expect(figures).to_be_visible()
        expect(figures.locator('[data-figure="tokens"]')).to_have_text("5 in · 5 out")
        expect(figures.locator('[data-figure="ttft"]')).to_have_text(re.compile(r"^\d"))
        expect(figures.locator('[data-figure="cost"]')).to_have_text("$0")
