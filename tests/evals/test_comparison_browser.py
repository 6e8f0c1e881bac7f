"""Comparing two evaluation runs in a real browser: pick both on the evaluation list, see the
delta and the changed cases side by side, filter them, then find the comparison on the flow's
publish page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from evals.models import EvalComparison
from tests.conftest import PASSWORD
from tests.e2e.conftest import allow_orm_beside_playwright, browser, log_in, page  # noqa: F401
from tests.evals.test_comparison import two_runs  # noqa: F401

pytestmark = pytest.mark.e2e


def test_an_editor_compares_two_runs_and_the_flow_page_shows_the_comparison(page, two_runs):  # noqa: F811
    flow, dataset, baseline, candidate = two_runs
    log_in(page, "olive", PASSWORD)

    page.goto(f"/evaluations/{dataset.slug}/runs/")
    page.get_by_label(f"Baseline: evaluation {baseline.id}").check()
    page.get_by_label(f"Candidate: evaluation {candidate.id}").check()
    page.get_by_role("button", name="Compare").click()

    page.wait_for_url("**/comparisons/*/")
    kept = EvalComparison.objects.get()
    assert (kept.baseline_id, kept.candidate_id) == (baseline.id, candidate.id)
    expect(page.get_by_role("heading", level=1)).to_have_text("v1 vs v2 on Smoke")
    expect(page.locator("#compare-summary")).to_contain_text("1 fixed, 1 broke, 2 changed of 3")
    cost = page.locator('#side-by-side tr[data-metric="Total cost"]')
    expect(cost).to_contain_text("$0.003000")
    expect(cost.locator('[data-verdict="worse"]')).to_have_text("+$0.003000")
    latency = page.locator('#side-by-side tr[data-metric="Latency p50"]')
    expect(latency.locator('[data-verdict="better"]')).to_have_text("-20 ms")

    changed = page.locator("#changed-cases tbody tr")
    expect(changed).to_have_count(2)
    broke = page.locator('#changed-cases tr[data-change="broke"]')
    expect(broke).to_contain_text("broke")
    expect(broke.locator("td").nth(4)).to_contain_text("Hallo")  # the baseline's answer
    expect(broke.locator("td").nth(5)).to_contain_text("Hallo!!")  # the candidate's
    expect(broke.locator("td").nth(5)).to_contain_text("exact_match 0.00 ✗")

    page.get_by_role("link", name="Fixed (1)").click()
    expect(changed).to_have_count(1)
    expect(changed.first).to_contain_text("Bonjour")
    expect(page.get_by_role("link", name="Fixed (1)")).to_have_attribute("aria-current", "page")

    page.goto(f"/flows/{flow.slug}/")
    panel = page.locator("#last-comparison")
    expect(panel).to_contain_text("v1 vs v2 on Smoke")
    expect(panel).to_contain_text("cost $0.003000 → $0.006000")
    expect(panel).to_contain_text("1 fixed / 1 broke")
    panel.get_by_role("link", name="See the comparison").click()
    page.wait_for_url(f"**/evaluations/{dataset.slug}/comparisons/{kept.id}/")
