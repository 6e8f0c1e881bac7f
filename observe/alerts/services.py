"""Writes on alert rules (audited) and the check that fires or resolves them.

Firing once per breach: a rule's ``state`` changes only by a conditional UPDATE
(``… WHERE state = 'ok'`` to fire, ``… WHERE state = 'firing'`` to resolve), and only the check
whose UPDATE changed the row records the firing and notifies. Two checks at once (two beat
deliveries, two workers) thus notify once; the second waits on the row lock, then finds the
state already moved. Notifications go out after the commit, outside any lock, at most once: a
worker that dies between the commit and the send loses that notice, never repeats it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from catalog.secrets import encrypt
from flows.models import Flow
from observe.alerts import notify
from observe.alerts.values import alert_value
from observe.models import AlertFiring, AlertRule, AlertState
from studio.throttle import throttle_hit
from workspaces.audit import audit_record

log = logging.getLogger(__name__)

# What the audit log shows of a rule: never the signing secret.
_AUDITED = (
    "name",
    "metric",
    "threshold",
    "window_minutes",
    "min_runs",
    "emails",
    "webhook_url",
    "notify_resolved",
    "enabled",
)


@dataclass(frozen=True)
class AlertRuleValues:
    """A rule's settings as a validated form gives them. ``webhook_secret``: None keeps the
    stored one, "" removes it."""

    name: str
    metric: str
    threshold: float
    window_minutes: int
    min_runs: int
    emails: list[str]
    webhook_url: str
    webhook_secret: str | None
    notify_resolved: bool
    enabled: bool


def _audited(rule: AlertRule) -> dict[str, Any]:
    data = {name: getattr(rule, name) for name in _AUDITED}
    data["flow"] = rule.flow.slug
    data["signed"] = bool(rule.webhook_secret)
    return data


def _apply(rule: AlertRule, values: AlertRuleValues) -> None:
    for name in _AUDITED:
        setattr(rule, name, getattr(values, name))
    if values.webhook_secret is not None:
        rule.webhook_secret = encrypt(values.webhook_secret) if values.webhook_secret else None


def alert_rule_create(*, flow: Flow, values: AlertRuleValues, actor) -> AlertRule:
    rule = AlertRule(workspace_id=flow.workspace_id, flow=flow, created_by=actor)
    _apply(rule, values)
    with transaction.atomic():
        rule.save()
        audit_record(
            workspace=flow.workspace_id,
            actor=actor,
            action="alert.create",
            target=rule,
            after=_audited(rule),
        )
    return rule


def alert_rule_update(*, rule: AlertRule, values: AlertRuleValues, actor) -> AlertRule:
    """Save new settings. Disabling a firing rule resolves its firing, without notice: no
    check will ever resolve it otherwise."""
    before = _audited(rule)
    _apply(rule, values)
    with transaction.atomic():
        locked = AlertRule.objects.select_for_update().get(pk=rule.pk)
        rule.state, rule.last_checked_at, rule.last_value = (
            locked.state,
            locked.last_checked_at,
            locked.last_value,
        )
        if not rule.enabled and rule.state == AlertState.FIRING:
            rule.state = AlertState.OK
            rule.firings.filter(resolved_at=None).update(resolved_at=timezone.now())
        rule.save()
        audit_record(
            workspace=rule.workspace_id,
            actor=actor,
            action="alert.change",
            target=rule,
            before=before,
            after=_audited(rule),
        )
    return rule


def alert_rule_delete(*, rule: AlertRule, actor) -> None:
    """Delete the rule and its firing history."""
    with transaction.atomic():
        audit_record(
            workspace=rule.workspace_id,
            actor=actor,
            action="alert.delete",
            target=rule,
            before=_audited(rule),
        )
        rule.delete()


# One test per rule per window, whoever asks: the button sends mail and POSTs to a URL the
# member typed, so it must not become a way to flood either. The workspace's own limit keeps a
# member from multiplying the rate by adding rules.
TEST_WINDOW_S = 10
WORKSPACE_TESTS_PER_MINUTE = 20


class AlertTestTooSoon(Exception):
    """A test of this rule was sent less than ``TEST_WINDOW_S`` ago, or the workspace sent
    ``WORKSPACE_TESTS_PER_MINUTE`` tests this minute; ``wait_s`` says when to try again."""

    def __init__(self, wait_s: int) -> None:
        super().__init__(wait_s)
        self.wait_s = wait_s


@dataclass(frozen=True)
class AlertTestResult:
    email: notify.Outcome
    webhook: notify.Outcome


def alert_rule_test(*, rule: AlertRule, actor) -> AlertTestResult:
    """Send the rule's mail and webhook now, with a payload marked ``"test": true``; records no
    firing and leaves the rule's state alone. Raises AlertTestTooSoon within ``TEST_WINDOW_S``
    of the rule's last test or past the workspace's limit. The audit entry holds each channel's
    outcome."""
    if not throttle_hit(key=f"alert-test:{rule.pk}", limit=1, window_s=TEST_WINDOW_S):
        raise AlertTestTooSoon(TEST_WINDOW_S)
    if not throttle_hit(
        key=f"alert-test-workspace:{rule.workspace_id}",
        limit=WORKSPACE_TESTS_PER_MINUTE,
        window_s=60,
    ):
        raise AlertTestTooSoon(60)
    payload = notify.alert_test_payload(rule, timezone.now())
    result = AlertTestResult(
        email=notify.email_send(rule, payload), webhook=notify.webhook_send(rule, payload)
    )
    outcomes = {
        channel: {"status": outcome.status, "error": outcome.error}
        for channel, outcome in (("email", result.email), ("webhook", result.webhook))
    }
    audit_record(
        workspace=rule.workspace_id, actor=actor, action="alert.test", target=rule, after=outcomes
    )
    return result


def alert_check(*, rule_id: int, now: datetime | None = None) -> AlertFiring | None:
    """Measure the rule's metric and move its state: the firing it opened or resolved (and
    notified), or None when the state stays. A value of None (too few runs) keeps the state."""
    now = now or timezone.now()
    rule = AlertRule.objects.select_related("flow").filter(pk=rule_id, enabled=True).first()
    if rule is None:
        return None
    value = alert_value(rule, now=now)
    event, firing = None, None
    with transaction.atomic():
        same = AlertRule.objects.filter(pk=rule.pk, enabled=True)
        checked = {"last_checked_at": now, "last_value": value}
        if value is not None and value >= rule.threshold:
            if same.filter(state=AlertState.OK).update(state=AlertState.FIRING, **checked):
                event = "firing"
                firing = AlertFiring.objects.create(
                    rule=rule, fired_at=now, value=value, threshold=rule.threshold
                )
        elif value is not None:
            if same.filter(state=AlertState.FIRING).update(state=AlertState.OK, **checked):
                firing = rule.firings.select_for_update().filter(resolved_at=None).first()
                if firing is not None:
                    event = "resolved"
                    firing.resolved_at, firing.resolved_value = now, value
                    firing.save(update_fields=["resolved_at", "resolved_value"])
        if event is None:
            same.update(**checked)
    if event == "firing" or (event == "resolved" and rule.notify_resolved):
        _notify(rule, firing, event)
    return firing


def _notify(rule: AlertRule, firing: AlertFiring, event: str) -> None:
    payload = notify.alert_payload(rule, firing, event)
    email = notify.email_send(rule, payload)
    webhook = notify.webhook_send(rule, payload)
    if event == "firing":
        firing.email_status, firing.email_error = email.status, email.error
        firing.webhook_status, firing.webhook_error = webhook.status, webhook.error
        firing.save(
            update_fields=["email_status", "email_error", "webhook_status", "webhook_error"]
        )
        return
    # The resolved notice's failures are added to the firing's record, its statuses kept.
    notes = {
        f"{channel}_error": "\n".join(
            filter(None, [getattr(firing, f"{channel}_error"), f"resolved notice: {outcome.error}"])
        )
        for channel, outcome in (("email", email), ("webhook", webhook))
        if outcome.error
    }
    if notes:
        AlertFiring.objects.filter(pk=firing.pk).update(**notes)


def alerts_check_all(*, now: datetime | None = None, deadline: float | None = None) -> int:
    """Check the enabled rules one by one, least recently checked first, starting none after
    ``deadline`` (``time.monotonic()``): the rest come first next time. A rule that fails is
    logged and the rest go on. The number checked."""
    rule_ids = list(
        AlertRule.objects.filter(enabled=True)
        .order_by(F("last_checked_at").asc(nulls_first=True), "id")
        .values_list("id", flat=True)
    )
    checked = 0
    for rule_id in rule_ids:
        if deadline is not None and time.monotonic() > deadline:
            break
        try:
            alert_check(rule_id=rule_id, now=now)
        except Exception:  # one broken rule (a bad row, a failing query) stops no other
            log.exception("alert rule %s could not be checked", rule_id)
            continue
        checked += 1
    return checked
