"""The API reference in a real browser: Swagger UI, served from the studio's own static files,
renders the operations of the OpenAPI document for a visitor who is not signed in, under the
Content-Security-Policy, without a console error and without a request to another host."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def test_the_docs_page_renders_the_operations(page, live_studio):
    errors: list[str] = []
    hosts: set[str] = set()
    page.add_init_script(RECORD_VIOLATIONS)
    # "Failed to load resource" is also the browser's own /favicon.ico, which the studio has
    # not; the page's requests are checked by their responses instead.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    page.goto("/api/v1/docs/")
    expect(page.locator(".opblock-summary-path", has_text="/v1/embeddings")).to_be_visible()
    expect(page.locator(".opblock-tag", has_text="Conversations")).to_be_visible()
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    page.wait_for_load_state("networkidle")

    assert page.locator(".opblock").count() >= 20
    assert page.evaluate("window.__violations") == []
    assert errors == []
    assert hosts == {urlsplit(live_studio).netloc}
