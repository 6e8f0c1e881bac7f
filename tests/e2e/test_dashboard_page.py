"""The dashboard in a real browser: Chart.js (vendored) draws each of its charts from the page's
own data, and nothing is fetched from another host."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

CHARTS = ("chart-runs", "chart-latency", "chart-tokens")


def test_the_dashboard_draws_a_chart_per_canvas(page, live_studio, owner, make_flow, echo_model):
    from catalog.models import Usage
    from flows.models import Run

    flow = make_flow(echo_model, slug="assistant")
    now = timezone.now()
    for status in ("succeeded", "failed"):
        Run.objects.create(
            workspace=flow.workspace,
            flow=flow,
            flow_version=flow.published_version,
            status=status,
            started_at=now,
            finished_at=now + timedelta(milliseconds=300),
            deadline_at=now + timedelta(hours=1),
        )
    Usage.objects.create(
        workspace=flow.workspace,
        model_slug="echo",
        flow_id=flow.id,
        input_tokens=10,
        output_tokens=5,
        ttft_ms=40,
        cost=Decimal("0.001"),
    )
    host = urlsplit(live_studio).netloc
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    log_in(page, "olive", PASSWORD)

    page.goto("/dashboard/")

    expect(page.locator("#total-runs")).to_have_text("2")
    expect(page.locator("#total-error-rate")).to_have_text("50%")
    page.wait_for_function(
        "ids => ids.every(id => window.Chart && Chart.getChart(document.getElementById(id)))",
        arg=list(CHARTS),
    )
    assert all(urlsplit(url).netloc == host for url in requested if url.startswith("http"))
