"""The usage page in a real browser: Chart.js (vendored, served by the studio) draws both charts
from the page's own data, nothing is fetched from another host, and without JavaScript the
tables still carry the numbers."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

CHARTS = ("chart-days", "chart-models-calls", "chart-models-tokens", "chart-models-cost")


@pytest.fixture
def calls(workspace, owner):
    """Rows written with the ORM: ``usage_record`` bridges to async code, which cannot run in
    a thread where Playwright's sync API holds an event loop."""
    from catalog.models import Usage
    from catalog.services import model_create

    model = model_create(
        slug="alpha", name="Alpha", engine="echo", workspace=workspace, price_input="1"
    )
    for tokens in (100, 200, 300):
        Usage.objects.create(
            workspace=workspace,
            model=model,
            model_slug="alpha",
            source="flow",
            input_tokens=tokens,
            output_tokens=tokens // 2,
            latency_ms=tokens,
            cost=Decimal(tokens) / 1_000_000,
            user=owner,
        )
    Usage.objects.create(workspace=workspace, model_slug="beta", input_tokens=5, cache_hit=True)


def test_the_charts_are_drawn_from_the_host_alone(page, live_studio, owner, calls):
    host = urlsplit(live_studio).netloc
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    log_in(page, "olive", PASSWORD)

    page.goto("/catalog/usage/")

    expect(page.locator("#total-calls")).to_have_text("4")
    for canvas in CHARTS:
        expect(page.locator(f"#{canvas}")).to_be_visible()
    page.wait_for_function(
        "ids => ids.every(id => window.Chart && Chart.getChart(document.getElementById(id)))",
        arg=list(CHARTS),
    )
    days = page.evaluate(
        """() => Chart.getChart("chart-days").data.datasets.map(d => [d.label,
            d.data.reduce((a, b) => a + b, 0)])"""
    )
    assert days[:2] == [["Input tokens", 605], ["Output tokens", 300]]
    models = page.evaluate(
        """() => ["calls", "tokens", "cost"].map(m => {
            const c = Chart.getChart("chart-models-" + m);
            return [c.data.labels, c.data.datasets[0].data]; })"""
    )
    assert models[0] == [["alpha", "beta"], [3, 1]]
    assert models[1] == [["alpha", "beta"], [900, 5]]
    assert models[2][1] == pytest.approx([0.0006, 0])
    # The canvases were painted, not merely created: some pixel is not transparent.
    painted = page.evaluate(
        """id => { const c = document.getElementById(id);
            const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            return px.some((v, i) => i % 4 === 3 && v > 0); }""",
        "chart-days",
    )
    assert painted

    assert requested, "the browser made no request at all"
    foreign = [url for url in requested if urlsplit(url).netloc != host]
    assert not foreign, f"the page loaded from other hosts: {foreign}"
    assert any(url.endswith("/vendor/chartjs/chart.umd.min.js") for url in requested)


def test_without_javascript_the_tables_hold_the_numbers(browser, live_studio, owner, calls):
    context = browser.new_context(base_url=live_studio, java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, "olive", PASSWORD)
        page.goto("/catalog/usage/?model=")

        table = page.locator("#usage-by-model")
        expect(table.locator("tbody tr")).to_have_count(2)
        alpha = table.locator("tbody tr").first
        expect(alpha.locator("td").nth(0)).to_have_text("alpha")
        expect(alpha.locator("td").nth(1)).to_have_text("3")
        expect(alpha.locator("td").nth(2)).to_have_text("900")
        expect(alpha.locator("td").nth(3)).to_have_text("0.000600")
        expect(alpha.locator("td").nth(8)).to_have_text("0%")
        expect(table.locator("tbody tr").nth(1).locator("td").nth(8)).to_have_text("100%")
    finally:
        context.close()
