"""A knowledge base in a real browser: create it through the form, upload a Markdown file, watch
its status turn ready in the table that follows events (no reload), then ask the test page a
question and read the chunk that answers it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

GUIDE = b"""# Plants

Photosynthesis converts light energy into chemical energy in the chloroplasts of plants.

# Landmarks

The Eiffel Tower in Paris was completed in 1889 for the World's Fair.
"""


def test_a_base_is_created_filled_and_queried_in_the_browser(page, owner, embedding_model):
    log_in(page, "olive", PASSWORD)
    page.get_by_role("button", name="Build").click()
    page.get_by_role("link", name="Knowledge", exact=True).click()
    page.get_by_role("link", name="New knowledge base").click()
    page.get_by_label("Name", exact=True).fill("Field guide")
    page.get_by_label("Slug", exact=True).fill("field-guide")
    page.get_by_label("Splitter").select_option("markdown")
    expect(page.get_by_label("Embedding model")).to_have_value(str(embedding_model.id))
    page.get_by_role("button", name="Create knowledge base").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Field guide")
    page.get_by_label("Files").set_input_files(
        files=[{"name": "guide.md", "mimeType": "text/markdown", "buffer": GUIDE}]
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("ul.messages")).to_contain_text("Added guide.md")

    # A marker on this very page: a reload or a navigation would drop it.
    page.evaluate("window.studioTestMarker = 'same page'")
    row = page.locator("#document-table tr", has_text="guide.md")
    expect(row.locator(".document-status")).to_contain_text("Ready", timeout=60_000)
    assert page.evaluate("window.studioTestMarker") == "same page"
    expect(page.locator("#documents")).not_to_have_attribute("hx-trigger", re.compile("every"))

    page.get_by_role("link", name="Test retrieval").click()
    page.get_by_label("Query").fill("Which tower stands in Paris?")
    page.get_by_role("button", name="Retrieve").click()

    first = page.locator("#test-results article.result").first
    expect(first).to_contain_text("The Eiffel Tower in Paris was completed in 1889")
    expect(first).to_contain_text("guide.md")
    expect(page.locator("#test-timings")).to_contain_text("embed")
    assert page.url.endswith("/test/")  # the results came by htmx, into the same page
