"""Alerts in a real browser: a member adds a rule through the form, sends a test notification
to a local webhook receiver and reads "sent"; failing runs breach the threshold, the check
fires, and the history shows the firing with its webhook sent, delivered once."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from studio import launch, redis_client, throttle
from tests.conftest import PASSWORD
from tests.e2e.conftest import allow_orm_beside_playwright, browser, log_in  # noqa: F401

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def loopback_studio(process_env, tmp_path_factory):
    """A daphne of its own that may POST to 127.0.0.1 (the session's web server refuses
    loopback, as a studio does by default); mail on the console backend."""
    port = launch.free_port()
    env = {**process_env, "STUDIO_EGRESS_ALLOW_FETCH": "127.0.0.1", "EMAIL_HOST": ""}
    with open(tmp_path_factory.mktemp("alerts-web") / "web.log", "w") as log:
        process = launch.start(launch.web_command(port), env, stdout=log, stderr=subprocess.STDOUT)
        launch.wait_for_port(port, process=process)
        yield f"http://127.0.0.1:{port}"
        launch.stop(process)


@pytest.fixture
def page(browser, loopback_studio, transactional_db):  # noqa: F811 (the browser fixture)
    client = redis_client.client()
    for key in client.scan_iter(f"{throttle.PREFIX}alert-test*"):
        client.delete(key)  # an earlier run's rule of the same id holds no window shut
    context = browser.new_context(base_url=loopback_studio, viewport={"width": 1100, "height": 760})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def _failed_run(flow):
    from flows.models import Run

    created = timezone.now() - timedelta(minutes=1)
    run = Run.objects.create(
        workspace=flow.workspace,
        flow=flow,
        flow_version=flow.published_version,
        status="failed",
        deadline_at=created + timedelta(hours=1),
    )
    Run.objects.filter(pk=run.pk).update(
        created_at=created, started_at=created, finished_at=created + timedelta(milliseconds=50)
    )


def test_a_member_adds_a_rule_tests_it_and_sees_it_fire(
    page,  # noqa: F811
    owner,
    echo_model,
    make_flow,
    receiver,
    settings,
):
    from observe.alerts.services import alerts_check_all
    from observe.models import AlertRule

    flow = make_flow(echo_model, slug="assistant")
    log_in(page, "olive", PASSWORD)

    page.goto(f"/flows/{flow.slug}/alerts/")
    expect(page.locator("#alert-rules-empty")).to_be_visible()
    page.get_by_role("link", name="New alert").click()
    page.get_by_label("Name").fill("Failures")
    page.get_by_label("Metric").select_option("error_rate")
    page.get_by_label("Threshold").fill("50")
    page.get_by_label("Window (minutes)").fill("15")
    page.get_by_label("Minimum runs").fill("2")
    page.get_by_label("Webhook URL").fill(receiver.url)
    page.get_by_role("button", name="Add alert").click()

    expect(page.locator(".messages")).to_contain_text("Added the alert Failures.")
    row = page.locator("#alert-rules tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Failures")
    expect(row).to_contain_text("OK")
    rule = AlertRule.objects.get(flow=flow)
    assert (rule.metric, rule.threshold, rule.window_minutes, rule.min_runs) == (
        "error_rate",
        50,
        15,
        2,
    )

    row.get_by_role("button", name="Send a test").click()
    expect(page.locator(".messages")).to_contain_text(
        "Test notification of Failures: webhook sent."
    )
    [delivery] = receiver.received
    assert json.loads(delivery["body"])["test"] is True
    expect(page.locator("#alert-history-empty")).to_be_visible()

    # The breach: three failed runs in the window, then the check, as the beat runs it.
    for _ in range(3):
        _failed_run(flow)
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1"]  # the check runs in this process
    assert alerts_check_all() == 1
    alerts_check_all()  # still breached: no second notice

    page.goto(f"/flows/{flow.slug}/alerts/")
    expect(row).to_contain_text("Firing")
    history = page.locator("#alert-history tbody tr")
    expect(history).to_have_count(1)
    expect(history).to_contain_text("Failures")
    expect(history.locator("td").nth(2)).to_have_text("100")
    expect(history.locator("td").nth(6)).to_have_text("Sent")
    page.locator("#alert-history").screenshot(path="/tmp/alerts-history.png")

    events = [json.loads(d["body"])["event"] for d in receiver.received]
    assert events == ["test", "firing"]
