"""Alert rules on a flow's figures, and the record of each time one fired."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from flows.models import Flow
from workspaces.models import WorkspaceOwned


class AlertMetric(models.TextChoices):
    # Rates are in per cent, so that a threshold reads as the user typed it ("5" is 5 %).
    ERROR_RATE = "error_rate", "Error rate (%)"
    P95_LATENCY_MS = "p95_latency_ms", "p95 run time (ms)"
    COST_PER_DAY = "cost_per_day", "Cost today"
    NEGATIVE_FEEDBACK_RATE = "negative_feedback_rate", "Negative feedback rate (%)"


class AlertState(models.TextChoices):
    OK = "ok", "OK"
    FIRING = "firing", "Firing"


class NotifyStatus(models.TextChoices):
    NONE = "", "Not configured"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class AlertRule(WorkspaceOwned):
    """A threshold on one of a flow's figures. ``state`` moves only by a conditional UPDATE
    (``observe.alerts.services.alert_check``), so each breach fires once."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=200)
    metric = models.CharField(max_length=32, choices=AlertMetric.choices)
    # Fires when the value reaches it (>=).
    threshold = models.FloatField()
    # The runs (or ratings) of the last so many minutes; the cost is always today's.
    window_minutes = models.PositiveIntegerField(default=60)
    # Fewer finished runs (ratings, for feedback) than this in the window: the rule keeps its
    # state, so that one failed run of two does not page anyone.
    min_runs = models.PositiveIntegerField(default=10)
    emails = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(max_length=2000, blank=True)
    # Encrypted (``catalog.secrets``): the HMAC key the receiver checks signatures with.
    webhook_secret = models.BinaryField(null=True, blank=True)
    notify_resolved = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.OK)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["enabled", "id"], name="alertrule_enabled")]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:  # never the secret, in logs or tracebacks
        return f"<AlertRule {self.pk} {self.metric} >= {self.threshold}>"


class AlertFiring(models.Model):
    """One breach: from the check that saw the value reach the threshold to the one that saw
    it fall back (``resolved_at``), with what each notification did."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="firings")
    fired_at = models.DateTimeField()
    value = models.FloatField()
    threshold = models.FloatField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_value = models.FloatField(null=True, blank=True)
    email_status = models.CharField(max_length=8, choices=NotifyStatus.choices, blank=True)
    email_error = models.TextField(blank=True)
    webhook_status = models.CharField(max_length=8, choices=NotifyStatus.choices, blank=True)
    webhook_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            # At most one open firing per rule, whatever races the checks run.
            models.UniqueConstraint(
                fields=["rule"], condition=models.Q(resolved_at=None), name="alert_one_open_firing"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule} fired at {self.fired_at:%Y-%m-%d %H:%M}"
