"""An alert's notifications: a mail to its addresses and a signed JSON POST to its webhook.

Each channel reports what it did (``Outcome``) instead of raising: a refused or unreachable
webhook is recorded on the firing and never stops the other channel or the other rules.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from catalog.secrets import CredentialUnreadable, decrypt
from observe.models import AlertFiring, AlertRule, NotifyStatus
from studio import egress

log = logging.getLogger(__name__)

# A receiver that takes longer holds up the next rules' checks.
WEBHOOK_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
SIGNATURE_HEADER = "X-Studio-Signature"
MAX_ERROR = 1000


@dataclass(frozen=True)
class Outcome:
    status: str  # NotifyStatus
    error: str = ""


NOT_CONFIGURED = Outcome(NotifyStatus.NONE)


def alert_link(rule: AlertRule) -> str:
    """The flow's alerts page: absolute when ``STUDIO_PUBLIC_URL`` names the studio's address."""
    path = reverse("observe:alert-list", args=[rule.flow.slug])
    return settings.STUDIO_PUBLIC_URL + path


def alert_payload(rule: AlertRule, firing: AlertFiring, event: str) -> dict[str, Any]:
    """What the webhook receives; ``event`` is "firing" or "resolved"."""
    return {
        "event": event,
        "rule": {"id": rule.id, "name": rule.name},
        "flow": {"slug": rule.flow.slug, "name": rule.flow.name},
        "metric": rule.metric,
        "value": firing.resolved_value if event == "resolved" else firing.value,
        "threshold": firing.threshold,
        "fired_at": firing.fired_at.isoformat(),
        "resolved_at": firing.resolved_at.isoformat() if firing.resolved_at else None,
        "link": alert_link(rule),
    }


def alert_test_payload(rule: AlertRule, now: datetime) -> dict[str, Any]:
    """A firing's payload, marked ``"test": true`` (event "test"), for the "send a test" button:
    the rule's last measured value, no firing behind it."""
    return {
        "event": "test",
        "test": True,
        "rule": {"id": rule.id, "name": rule.name},
        "flow": {"slug": rule.flow.slug, "name": rule.flow.name},
        "metric": rule.metric,
        "value": rule.last_value,
        "threshold": rule.threshold,
        "fired_at": now.isoformat(),
        "resolved_at": None,
        "link": alert_link(rule),
    }


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>``: the time in the signed text
    lets a receiver refuse a replayed delivery."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def webhook_send(rule: AlertRule, payload: dict[str, Any]) -> Outcome:
    """POST ``payload`` through the SSRF-safe client (the member typed the URL: FETCH's list).
    Redirects are not followed; any answer but 2xx is a failure."""
    if not rule.webhook_url:
        return NOT_CONFIGURED
    body = json.dumps(payload, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "studio-alerts"}
    try:
        if rule.webhook_secret:
            secret = decrypt(rule.webhook_secret)
            headers[SIGNATURE_HEADER] = signature(secret, int(time.time()), body)
    except CredentialUnreadable as exc:
        return Outcome(NotifyStatus.FAILED, f"the signing secret cannot be read: {exc}")
    try:
        with egress.client(purpose=egress.FETCH, timeout=WEBHOOK_TIMEOUT) as client:
            # Streamed and never read: the receiver's answer is its status alone.
            with client.stream("POST", rule.webhook_url, content=body, headers=headers) as answer:
                status = answer.status_code
    except httpx.HTTPError as exc:
        log.info("alert %s: webhook not delivered: %s", rule.pk, exc)
        return Outcome(NotifyStatus.FAILED, (str(exc) or type(exc).__name__)[:MAX_ERROR])
    if not 200 <= status < 300:
        return Outcome(NotifyStatus.FAILED, f"the webhook answered HTTP {status}")
    return Outcome(NotifyStatus.SENT)


def email_send(rule: AlertRule, payload: dict[str, Any]) -> Outcome:
    if not rule.emails:
        return NOT_CONFIGURED
    flow = payload["flow"]["name"]
    if payload["event"] == "test":
        subject = f"Test: {rule.name} on {flow}"
        what = f"(threshold {payload['threshold']:g}): a test notification, nothing fired"
    elif payload["event"] == "resolved":
        subject = f"Resolved: {rule.name} on {flow}"
        what = f"is back under {payload['threshold']:g}: now {_figure(payload['value'])}"
    else:
        subject = f"Alert: {rule.name} on {flow}"
        what = f"reached {_figure(payload['value'])} (threshold {payload['threshold']:g})"
    text = f"{rule.get_metric_display()} of {flow} {what}.\n\n{payload['link']}\n"
    # A name with a line break would make a header of its own: Django refuses the whole mail.
    subject = " ".join(subject.split())
    try:
        send_mail(subject=subject, message=text, from_email=None, recipient_list=list(rule.emails))
    except Exception as exc:  # SMTP errors are many kinds; the firing records which
        log.warning("alert %s: mail not sent: %s", rule.pk, exc)
        return Outcome(NotifyStatus.FAILED, (str(exc) or type(exc).__name__)[:MAX_ERROR])
    return Outcome(NotifyStatus.SENT)


def _figure(value: float | None) -> str:
    return "no value" if value is None else f"{value:.4g}"
