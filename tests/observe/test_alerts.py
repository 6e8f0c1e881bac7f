"""Alerts: each metric fires at its threshold, once per breach, resolves and fires again; the
webhook (a local server) and the mail; refusals recorded; the pages' limits; the beat task on
the real worker."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import close_old_connections, transaction
from django.urls import reverse
from django.utils import timezone

from catalog.models import Usage
from conversations.models import Conversation, Message
from flows.models import Flow, Run
from observe.alerts.notify import SIGNATURE_HEADER
from observe.alerts.services import (
    TEST_WINDOW_S,
    WORKSPACE_TESTS_PER_MINUTE,
    AlertRuleValues,
    alert_check,
    alert_rule_create,
    alerts_check_all,
)
from observe.models import AlertFiring, AlertRule
from studio import redis_client, throttle
from workers import queues
from workspaces.models import AuditEvent


def _run(flow: Flow, *, ms: float = 100, status: str = "succeeded") -> Run:
    run = Run.objects.create(
        workspace=flow.workspace,
        flow=flow,
        flow_version=flow.published_version,
        status=status,
        deadline_at=timezone.now() + timedelta(hours=1),
    )
    created = timezone.now() - timedelta(minutes=1)
    Run.objects.filter(pk=run.pk).update(
        created_at=created, started_at=created, finished_at=created + timedelta(milliseconds=ms)
    )
    return run


def _call(flow: Flow, cost: str, *, days_ago: int = 0) -> None:
    usage = Usage.objects.create(
        workspace=flow.workspace, model_slug="echo", flow_id=flow.id, cost=Decimal(cost)
    )
    Usage.objects.filter(pk=usage.pk).update(
        created_at=timezone.now() - timedelta(days=days_ago, seconds=1)
    )


def _rate(run: Run, rating: int) -> None:
    conversation = Conversation.objects.create(workspace=run.workspace, flow=run.flow)
    Message.objects.create(conversation=conversation, role="assistant", run=run, feedback=rating)


def _values(**changes) -> AlertRuleValues:
    values = {
        "name": "Errors",
        "metric": "error_rate",
        "threshold": 20.0,
        "window_minutes": 60,
        "min_runs": 4,
        "emails": ["oncall@example.com"],
        "webhook_url": "",
        "webhook_secret": None,
        "notify_resolved": True,
        "enabled": True,
    }
    return AlertRuleValues(**(values | changes))


def _rule(flow: Flow, owner, **changes) -> AlertRule:
    return alert_rule_create(flow=flow, values=_values(**changes), actor=owner)


@pytest.fixture
def flow(make_flow, echo_model):
    return make_flow(echo_model, slug="assistant")


@pytest.fixture
def known(flow):
    """Four finished runs of 200 ms, one failed; ratings: three up, one down; calls of 0.75
    today and 5 yesterday. Every rate is 25 %, the p95 200 ms, the cost today 0.75."""
    runs = [_run(flow, ms=200) for _ in range(3)] + [_run(flow, ms=200, status="failed")]
    _run(flow, status="running")  # no outcome yet: counted nowhere
    for run, rating in zip(runs, (1, 1, 1, -1), strict=True):
        _rate(run, rating)
    _call(flow, "0.25")
    _call(flow, "0.5")
    _call(flow, "5", days_ago=1)
    return runs


# --- the values -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("metric", "value"),
    [
        ("error_rate", 25.0),
        ("p95_latency_ms", 200.0),
        ("cost_per_day", 0.75),
        ("negative_feedback_rate", 25.0),
    ],
)
def test_each_metric_fires_at_its_threshold_and_not_below(flow, owner, known, metric, value):
    reached = _rule(flow, owner, name="at", metric=metric, threshold=value)
    above = _rule(flow, owner, name="above", metric=metric, threshold=value + 0.01)

    firing = alert_check(rule_id=reached.id)
    assert alert_check(rule_id=above.id) is None

    reached.refresh_from_db()
    above.refresh_from_db()
    assert firing is not None and firing.value == pytest.approx(value)
    assert (reached.state, above.state) == ("firing", "ok")
    assert above.last_value == pytest.approx(value) and above.last_checked_at is not None
    assert [m.subject for m in mail.outbox] == [f"Alert: at on {flow.name}"]


@pytest.mark.django_db
@pytest.mark.parametrize("metric", ["error_rate", "p95_latency_ms", "negative_feedback_rate"])
def test_too_few_runs_neither_fire_nor_resolve(flow, owner, known, metric):
    rule = _rule(flow, owner, metric=metric, threshold=0, min_runs=5)
    assert alert_check(rule_id=rule.id) is None
    rule.refresh_from_db()
    assert (rule.state, rule.last_value) == ("ok", None)
    # Firing, then the window thins out: it stays firing rather than flapping.
    AlertRule.objects.filter(pk=rule.pk).update(state="firing")
    assert alert_check(rule_id=rule.id) is None
    rule.refresh_from_db()
    assert rule.state == "firing" and not mail.outbox


@pytest.mark.django_db
def test_cost_counts_only_this_flows_calls_of_today(flow, owner, known, make_flow, echo_model):
    other = make_flow(echo_model, slug="other")
    _call(other, "100")
    rule = _rule(flow, owner, metric="cost_per_day", threshold=1)
    assert alert_check(rule_id=rule.id) is None
    rule.refresh_from_db()
    assert rule.last_value == pytest.approx(0.75)


# --- once per breach ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_breach_fires_once_resolves_and_a_new_breach_fires_again(flow, owner, known):
    rule = _rule(flow, owner, threshold=20)  # 1 failed of 4: 25 %

    for _ in range(3):
        alerts_check_all()
    assert rule.firings.count() == 1 and len(mail.outbox) == 1
    assert mail.outbox[0].to == ["oncall@example.com"]
    assert "25" in mail.outbox[0].body and "/flows/assistant/alerts/" in mail.outbox[0].body

    for _ in range(4):
        _run(flow)  # 1 of 8: 12.5 %
    alert_check(rule_id=rule.id)
    alert_check(rule_id=rule.id)
    first = rule.firings.get()
    rule.refresh_from_db()
    assert rule.state == "ok"
    assert first.resolved_at is not None and first.resolved_value == pytest.approx(12.5)
    assert [m.subject for m in mail.outbox][1:] == [f"Resolved: Errors on {flow.name}"]

    for _ in range(4):
        _run(flow, status="failed")  # 5 of 12
    for _ in range(2):
        alert_check(rule_id=rule.id)
    assert rule.firings.count() == 2 and len(mail.outbox) == 3
    latest = rule.firings.order_by("-fired_at").first()
    assert latest.resolved_at is None and latest.value == pytest.approx(500 / 12)
    assert latest.email_status == "sent" and latest.webhook_status == ""


@pytest.mark.django_db
def test_a_name_with_a_line_break_still_makes_one_subject_line(flow, owner, known):
    rule = _rule(flow, owner, name="Errors\nBcc: victim@example.com", threshold=20)
    alert_check(rule_id=rule.id)
    [message] = mail.outbox
    assert message.subject == f"Alert: Errors Bcc: victim@example.com on {flow.name}"
    assert message.bcc == [] and message.to == ["oncall@example.com"]
    assert rule.firings.get().email_status == "sent"


@pytest.mark.django_db
def test_no_resolved_notice_when_not_asked(flow, owner, known):
    rule = _rule(flow, owner, threshold=20, notify_resolved=False)
    alert_check(rule_id=rule.id)
    for _ in range(4):
        _run(flow)
    alert_check(rule_id=rule.id)
    assert rule.firings.get().resolved_at is not None
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_disabled_rule_is_not_checked_and_disabling_resolves_it(client, flow, owner, known):
    rule = _rule(flow, owner, threshold=20)
    alert_check(rule_id=rule.id)
    client.force_login(owner)
    form = _form(rule_id=rule.id) | {"enabled": ""}
    page = client.post(reverse("observe:alert-edit", args=[flow.slug, rule.id]), form)
    assert page.status_code == 302
    rule.refresh_from_db()
    assert (rule.enabled, rule.state) == (False, "ok")
    assert rule.firings.get().resolved_at is not None
    assert alerts_check_all() == 0
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_checks_fire_once(flow, owner, known):
    """Both checks measure the breach while the row is locked, then race to move the state."""
    rule = _rule(flow, owner, threshold=20)
    results: list = []

    def check() -> None:
        try:
            results.append(alert_check(rule_id=rule.id))
        finally:
            close_old_connections()

    with transaction.atomic():
        AlertRule.objects.select_for_update().get(pk=rule.pk)
        threads = [threading.Thread(target=check) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # both have measured and wait on the lock
        assert not results
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 2
    assert sum(r is not None for r in results) == 1
    assert AlertFiring.objects.filter(rule=rule).count() == 1
    assert len(mail.outbox) == 1


# --- the webhook ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_webhook_gets_a_signed_json_payload(flow, owner, known, receiver, settings):
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1"]
    rule = _rule(flow, owner, emails=[], webhook_url=receiver.url, webhook_secret="s3cret")
    firing = alert_check(rule_id=rule.id)

    [delivery] = receiver.received
    payload = json.loads(delivery["body"])
    assert payload["event"] == "firing"
    assert payload["rule"] == {"id": rule.id, "name": "Errors"}
    assert payload["flow"] == {"slug": "assistant", "name": flow.name}
    assert (payload["metric"], payload["value"], payload["threshold"]) == ("error_rate", 25, 20)
    assert payload["fired_at"] == firing.fired_at.isoformat()
    assert payload["link"].endswith("/flows/assistant/alerts/")
    stamp, mac = delivery["headers"][SIGNATURE_HEADER.lower()].split(",")
    signed = stamp.removeprefix("t=").encode() + b"." + delivery["body"]
    expected = hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac.removeprefix("v1="), expected)
    firing.refresh_from_db()
    assert (firing.webhook_status, firing.email_status) == ("sent", "")
    assert not mail.outbox

    # Resolved: a second delivery, the "resolved" event.
    for _ in range(8):
        _run(flow)
    alert_check(rule_id=rule.id)
    assert [json.loads(d["body"])["event"] for d in receiver.received] == ["firing", "resolved"]


@pytest.mark.django_db
def test_a_webhook_that_answers_an_error_is_recorded_as_failed(
    flow, owner, known, receiver, settings
):
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1"]
    receiver.status = 500
    rule = _rule(flow, owner, webhook_url=receiver.url)
    alert_check(rule_id=rule.id)
    firing = rule.firings.get()
    assert (firing.webhook_status, firing.webhook_error) == (
        "failed",
        "the webhook answered HTTP 500",
    )
    assert firing.email_status == "sent" and len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_webhook_to_a_private_address_is_refused_and_recorded(
    flow, owner, known, receiver, settings, make_flow, echo_model
):
    settings.STUDIO_EGRESS_ALLOW_FETCH = []
    refused = _rule(flow, owner, name="Refused", webhook_url=receiver.url)
    other = make_flow(echo_model, slug="second")
    for status in ("failed", "succeeded"):
        _run(other, status=status)
        _run(other, status=status)
    later = _rule(other, owner, name="Later", threshold=50)

    assert alerts_check_all() == 2

    assert receiver.received == []
    firing = refused.firings.get()
    assert firing.webhook_status == "failed"
    assert "refused" in firing.webhook_error and "STUDIO_EGRESS_ALLOW_FETCH" in firing.webhook_error
    assert firing.email_status == "sent"
    # The refusal stopped nothing: the other rule fired and mailed too.
    assert later.firings.count() == 1
    assert sorted(m.subject for m in mail.outbox) == [
        "Alert: Later on Second",
        f"Alert: Refused on {flow.name}",
    ]


# --- the pages ------------------------------------------------------------------------------


def _form(**changes) -> dict:
    changes.pop("rule_id", None)
    return {
        "name": "Slow answers",
        "metric": "p95_latency_ms",
        "threshold": "2500",
        "window_minutes": "30",
        "min_runs": "10",
        "other_emails": "oncall@example.com, second@example.com",
        "webhook_url": "https://hooks.example.com/alerts",
        "webhook_secret": "",
        "notify_resolved": "on",
        "enabled": "on",
    } | changes


@pytest.mark.django_db
def test_an_editor_adds_changes_and_deletes_an_alert_with_audit_entries(client, flow, owner):
    client.force_login(owner)
    assert client.get(reverse("observe:alert-new", args=[flow.slug])).status_code == 200
    page = client.post(
        reverse("observe:alert-new", args=[flow.slug]),
        _form(members=["olive@example.com"], webhook_secret="topsecret"),
    )
    assert page.status_code == 302
    rule = AlertRule.objects.get(flow=flow)
    assert (rule.metric, rule.threshold, rule.window_minutes) == ("p95_latency_ms", 2500, 30)
    assert rule.emails == ["olive@example.com", "oncall@example.com", "second@example.com"]
    assert rule.webhook_secret and b"topsecret" not in bytes(rule.webhook_secret)
    created = AuditEvent.objects.get(action="alert.create")
    assert created.after["threshold"] == 2500 and "topsecret" not in json.dumps(created.after)

    listing = client.get(reverse("observe:alert-list", args=[flow.slug]))
    assert listing.status_code == 200 and "Slow answers" in listing.content.decode()
    assert reverse("observe:alert-edit", args=[flow.slug, rule.id]) in listing.content.decode()

    # A blank secret keeps the stored one.
    edit = reverse("observe:alert-edit", args=[flow.slug, rule.id])
    assert client.get(edit).status_code == 200
    secret = bytes(rule.webhook_secret)
    assert client.post(edit, _form(threshold="3000")).status_code == 302
    rule.refresh_from_db()
    assert rule.threshold == 3000 and bytes(rule.webhook_secret) == secret
    change = AuditEvent.objects.get(action="alert.change")
    assert (change.before["threshold"], change.after["threshold"]) == (2500, 3000)
    assert client.post(edit, _form(remove_secret="on")).status_code == 302
    rule.refresh_from_db()
    assert rule.webhook_secret is None

    delete = reverse("observe:alert-delete", args=[flow.slug, rule.id])
    assert client.get(delete).status_code == 405
    assert client.post(delete).status_code == 302
    assert not AlertRule.objects.exists()
    assert AuditEvent.objects.filter(action="alert.delete", target_id=str(rule.id)).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"other_emails": "oncall@example.com, not-an-address"}, "Not an email address"),
        ({"other_emails": "", "webhook_url": ""}, "Choose who is told"),
        ({"webhook_url": "ftp://example.com/x"}, "http or https URL"),
        ({"metric": "error_rate", "threshold": "150"}, "at most 100"),
        ({"threshold": "-1"}, "greater than or equal to 0"),
        ({"window_minutes": "0"}, "greater than or equal to 1"),
        ({"metric": "uptime"}, "Select a valid choice"),
        ({"members": ["oscar@example.com"]}, "Select a valid choice"),  # not a member
        ({"other_emails": ",".join(f"a{n}@example.com" for n in range(21))}, "At most 20"),
    ],
)
def test_bad_input_is_answered_with_the_form_and_nothing_saved(
    client, flow, owner, outsider, changes, error
):
    client.force_login(owner)
    page = client.post(reverse("observe:alert-new", args=[flow.slug]), _form(**changes))
    assert page.status_code == 400
    assert error in page.content.decode()
    assert not AlertRule.objects.exists()


@pytest.mark.django_db
def test_a_viewer_sees_the_alerts_but_cannot_change_them(client, flow, owner, viewer, known):
    rule = _rule(flow, owner, threshold=20)
    alert_check(rule_id=rule.id)
    client.force_login(viewer)
    listing = client.get(reverse("observe:alert-list", args=[flow.slug]))
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "Errors" in html and 'id="alert-history"' in html and "New alert" not in html
    assert client.get(reverse("observe:alert-new", args=[flow.slug])).status_code == 403
    assert client.post(reverse("observe:alert-new", args=[flow.slug]), _form()).status_code == 403
    edit = reverse("observe:alert-edit", args=[flow.slug, rule.id])
    assert client.post(edit, _form(threshold="99")).status_code == 403
    delete = reverse("observe:alert-delete", args=[flow.slug, rule.id])
    assert client.post(delete).status_code == 403
    rule.refresh_from_db()
    assert rule.threshold == 20 and AlertRule.objects.count() == 1
    assert client.post(reverse("observe:alert-list", args=[flow.slug])).status_code == 405


@pytest.mark.django_db
def test_another_workspace_cannot_see_or_touch_the_rules(
    client, flow, owner, outsider, make_flow, echo_model
):
    rule = _rule(flow, owner)
    client.force_login(outsider)
    for name in ("observe:alert-list", "observe:alert-new"):
        assert client.get(reverse(name, args=[flow.slug])).status_code == 404
    edit = reverse("observe:alert-edit", args=[flow.slug, rule.id])
    assert client.get(edit).status_code == 404
    assert client.post(edit, _form()).status_code == 404
    assert (
        client.post(reverse("observe:alert-delete", args=[flow.slug, rule.id])).status_code == 404
    )
    assert AlertRule.objects.filter(pk=rule.pk, threshold=20).exists()

    # A rule named under another flow of the same workspace is not there either.
    other = make_flow(echo_model, slug="second")
    client.force_login(owner)
    assert client.get(reverse("observe:alert-edit", args=[other.slug, rule.id])).status_code == 404


@pytest.mark.django_db
def test_the_flows_runs_list_links_to_its_alerts(client, flow, owner):
    client.force_login(owner)
    page = client.get(reverse("observe:flow-run-list", args=[flow.slug]))
    assert reverse("observe:alert-list", args=[flow.slug]) in page.content.decode()


# --- the beat task on the real worker ---------------------------------------------------------


def test_the_check_task_fires_on_the_worker(worker, flow, owner, known):
    from workers.tasks import check_alerts

    rule = _rule(flow, owner, threshold=20)
    check_alerts.apply_async(queue=queues.MAINTENANCE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rule.refresh_from_db()
        if rule.state == "firing" and rule.firings.filter(email_status="sent").exists():
            break
        time.sleep(0.2)
    assert rule.state == "firing", worker.log()[-3000:]
    # Again, as the beat would: still one firing.
    check_alerts.apply_async(queue=queues.MAINTENANCE)
    deadline = time.monotonic() + 30
    last = rule.last_checked_at
    while time.monotonic() < deadline and rule.last_checked_at == last:
        time.sleep(0.2)
        rule.refresh_from_db()
    assert rule.last_checked_at != last
    assert rule.firings.count() == 1
    assert rule.firings.get().email_status == "sent"


# --- send a test notification -----------------------------------------------------------------


@pytest.fixture
def fresh_test_window():
    """No earlier run's test of a rule with the same id holds the window shut."""
    client = redis_client.client()
    for key in client.scan_iter(f"{throttle.PREFIX}alert-test*"):
        client.delete(key)


def _messages(page) -> list[str]:
    return [str(m) for m in page.context["messages"]]


@pytest.mark.django_db
def test_a_test_notification_reaches_the_signed_webhook_and_the_mail_and_records_no_firing(
    client, flow, owner, known, receiver, settings, fresh_test_window
):
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1"]
    rule = _rule(flow, owner, threshold=20, webhook_url=receiver.url, webhook_secret="s3cret")
    client.force_login(owner)
    page = client.post(reverse("observe:alert-test", args=[flow.slug, rule.id]), follow=True)
    assert page.status_code == 200
    assert _messages(page) == ["Test notification of Errors: webhook sent; email sent."]
    assert "webhook sent; email sent" in page.content.decode()

    [delivery] = receiver.received
    payload = json.loads(delivery["body"])
    assert (payload["test"], payload["event"], payload["threshold"]) == (True, "test", 20)
    assert payload["rule"] == {"id": rule.id, "name": "Errors"}
    stamp, mac = delivery["headers"][SIGNATURE_HEADER.lower()].split(",")
    signed = stamp.removeprefix("t=").encode() + b"." + delivery["body"]
    expected = hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac.removeprefix("v1="), expected)
    [message] = mail.outbox
    assert message.subject == f"Test: Errors on {flow.name}" and "test" in message.body

    # Nothing fired, the state stays, the breach still fires for real on the next check.
    rule.refresh_from_db()
    assert (rule.state, rule.firings.count()) == ("ok", 0)
    entry = AuditEvent.objects.get(action="alert.test", target_id=str(rule.id))
    assert entry.after["webhook"] == {"status": "sent", "error": ""}
    assert entry.actor == owner
    assert alert_check(rule_id=rule.id) is not None
    assert [json.loads(d["body"])["event"] for d in receiver.received] == ["test", "firing"]


@pytest.mark.django_db
def test_a_test_to_a_private_address_is_refused_with_the_reason(
    client, flow, owner, receiver, settings, fresh_test_window
):
    settings.STUDIO_EGRESS_ALLOW_FETCH = []
    rule = _rule(flow, owner, emails=[], webhook_url=receiver.url)
    client.force_login(owner)
    page = client.post(reverse("observe:alert-test", args=[flow.slug, rule.id]), follow=True)
    [told] = _messages(page)
    assert told.startswith("Test notification of Errors: webhook not sent: the host '127.0.0.1'")
    assert "STUDIO_EGRESS_ALLOW_FETCH" in told and "email" not in told
    assert receiver.received == [] and not mail.outbox
    assert AuditEvent.objects.get(action="alert.test").after["webhook"]["status"] == "failed"


@pytest.mark.django_db
def test_a_test_answered_with_an_error_status_says_which(
    client, flow, owner, receiver, settings, fresh_test_window
):
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1"]
    receiver.status = 503
    rule = _rule(flow, owner, emails=[], webhook_url=receiver.url)
    client.force_login(owner)
    page = client.post(reverse("observe:alert-test", args=[flow.slug, rule.id]), follow=True)
    assert _messages(page) == [
        "Test notification of Errors: webhook not sent: the webhook answered HTTP 503."
    ]
    assert len(receiver.received) == 1


@pytest.mark.django_db
def test_tests_of_a_rule_are_limited_to_one_per_window(
    client, flow, owner, receiver, settings, fresh_test_window
):
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1"]
    rule = _rule(flow, owner, webhook_url=receiver.url)
    other = _rule(flow, owner, name="Other", emails=[], webhook_url=receiver.url)
    client.force_login(owner)
    url = reverse("observe:alert-test", args=[flow.slug, rule.id])
    assert _messages(client.post(url, follow=True)) == [
        "Test notification of Errors: webhook sent; email sent."
    ]
    for _ in range(5):
        page = client.post(url, follow=True)
        assert _messages(page) == [
            f"Tests of Errors were sent moments ago: try again in {TEST_WINDOW_S} seconds."
        ]
    # Another rule has a window of its own.
    client.post(reverse("observe:alert-test", args=[flow.slug, other.id]))
    assert len(receiver.received) == 2 and len(mail.outbox) == 1
    assert AuditEvent.objects.filter(action="alert.test").count() == 2


@pytest.mark.django_db
def test_a_workspace_cannot_multiply_its_tests_by_adding_rules(
    client, flow, owner, receiver, settings, fresh_test_window
):
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1"]
    rules = [
        _rule(flow, owner, name=f"Rule {n}", emails=[], webhook_url=receiver.url)
        for n in range(WORKSPACE_TESTS_PER_MINUTE + 1)
    ]
    client.force_login(owner)
    for rule in rules:
        page = client.post(reverse("observe:alert-test", args=[flow.slug, rule.id]), follow=True)
    last = f"Rule {WORKSPACE_TESTS_PER_MINUTE}"
    assert _messages(page) == [f"Tests of {last} were sent moments ago: try again in 60 seconds."]
    assert len(receiver.received) == WORKSPACE_TESTS_PER_MINUTE
    assert AuditEvent.objects.filter(action="alert.test").count() == WORKSPACE_TESTS_PER_MINUTE


@pytest.mark.django_db
def test_only_members_who_may_change_the_flow_send_tests(
    client, flow, owner, viewer, outsider, receiver, settings, fresh_test_window
):
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1"]
    rule = _rule(flow, owner, webhook_url=receiver.url)
    url = reverse("observe:alert-test", args=[flow.slug, rule.id])
    client.force_login(viewer)
    assert client.post(url).status_code == 403
    assert (
        "Send a test"
        not in client.get(reverse("observe:alert-list", args=[flow.slug])).content.decode()
    )
    client.force_login(outsider)
    assert client.post(url).status_code == 404
    client.force_login(owner)
    assert client.get(url).status_code == 405
    assert receiver.received == [] and not mail.outbox
    assert not AuditEvent.objects.filter(action="alert.test").exists()
    # None of them used up the window: the owner's first test goes out.
    assert client.post(url).status_code == 302
    assert len(receiver.received) == 1
