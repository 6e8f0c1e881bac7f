"""A real browser (Debian's chromium, driven by Playwright) against the live studio.

Playwright's sync API marks an event loop as running in the test's thread for as long as it
is started. That trips Django's async-unsafe check on every ORM call the test makes (allowed
here, for e2e tests only) and would break any later test that starts a loop of its own, so
the browser lives for one test, never for the session.
"""

from __future__ import annotations

import shutil

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser(allow_orm_beside_playwright):
    from playwright.sync_api import expect, sync_playwright

    # The first run on a fresh worker loads an engine (torch) before its first event.
    expect.set_options(timeout=20_000)
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: `make browser` installs Debian's package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_studio):
    context = browser.new_context(base_url=live_studio, viewport={"width": 1100, "height": 760})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def log_in(page, username: str, password: str) -> None:
    """Through the real login form, as a person would."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/home/")
