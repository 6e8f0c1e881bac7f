"""A run's page in a real browser: its trace follows the run's events to the end, without
polling and without a reload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from flows.models import RunSource
from flows.services import run_create
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def test_the_run_page_follows_the_run_to_its_end(page, owner, slow_echo_model, make_flow):
    flow = make_flow(slow_echo_model)
    log_in(page, "olive", PASSWORD)
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "alpha beta gamma delta epsilon"},
        source=RunSource.CHAT,
        user=owner,
    )
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    page.goto(f"/runs/{run.id}/")
    page.evaluate("window.studioTestMarker = 'same page'")  # a reload would drop it

    trace = page.locator("#trace")
    expect(trace.locator(".run-status")).to_contain_text("Succeeded")
    expect(trace).to_contain_text("llm_1")
    expect(trace).not_to_have_attribute("data-follow", re.compile("."))
    assert page.evaluate("window.studioTestMarker") == "same page"
    assert any(url.endswith(f"/runs/{run.id}/events") for url in requests), requests
    # The trace was fetched on events (a handful), not every second.
    page.wait_for_timeout(2500)
    fetched = [url for url in requests if url.endswith(f"/runs/{run.id}/")]
    assert 1 <= len(fetched) <= 12, fetched
    assert len([url for url in requests if url.endswith(f"/runs/{run.id}/")]) == len(fetched)
