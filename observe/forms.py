"""The runs list's filters: every query parameter validated, a bad one a form error."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import validate_email

from flows.models import RunSource, RunStatus
from observe.alerts.services import AlertRuleValues
from observe.dashboards import PERIODS
from observe.models import AlertMetric, AlertRule
from observe.selectors import Cursor, RunFilters, flow_choices
from workspaces.models import Workspace
from workspaces.selectors import keys_for

DEFAULT_PERIOD = 30
FEEDBACK = [("", "Any"), ("any", "Rated"), ("up", "Thumbs up"), ("down", "Thumbs down")]


class RunFilterForm(forms.Form):
    """Always bound (the query string). Choices are what ``user`` may see: a flow, key or user
    of another workspace is "not one of the available choices", never a 404 or a 500. With
    ``flow`` given (the per-flow and per-agent lists), the list is that flow's and the flow
    choice is left out."""

    q = forms.CharField(label="Search", required=False, max_length=200, strip=True)
    flow = forms.TypedChoiceField(label="Flow or agent", required=False, coerce=int)
    version = forms.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    status = forms.ChoiceField(choices=[("", "Any status"), *RunStatus.choices], required=False)
    source = forms.ChoiceField(choices=[("", "Any source"), *RunSource.choices], required=False)
    user = forms.ModelChoiceField(queryset=None, required=False, empty_label="Anyone")
    api_key = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="Any API key", label="API key"
    )
    end_user = forms.CharField(label="Widget end user", required=False, max_length=200)
    since = forms.DateField(label="From", required=False, widget=forms.DateInput({"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput({"type": "date"}))
    feedback = forms.ChoiceField(choices=FEEDBACK, required=False)
    after = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)

    def __init__(self, data: Any, *, user, workspace: Workspace, flow_id: int | None = None):
        super().__init__(data)
        self.flow_id = flow_id
        if flow_id is None:
            choices = flow_choices(user, workspace.id)
            self.fields["flow"].choices = [("", "Any flow or agent"), *choices]
        else:
            del self.fields["flow"]
        self.fields["user"].queryset = (
            get_user_model().objects.filter(memberships__workspace=workspace).order_by("username")
        )
        self.fields["api_key"].queryset = keys_for(user, workspace)

    def clean_after(self) -> Cursor | None:
        token = self.cleaned_data["after"]
        if not token:
            return None
        try:
            return Cursor.decode(token)
        except ValueError:
            raise forms.ValidationError(
                "This page link is broken: start from the first page."
            ) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The start date is after the end date.")
        return cleaned

    def filters(self) -> RunFilters:
        data = self.cleaned_data
        flow = self.flow_id if self.flow_id is not None else data.get("flow")
        return RunFilters(
            flow_ids=(flow,) if flow else (),
            version=data["version"],
            status=data["status"],
            source=data["source"],
            user_id=data["user"].pk if data["user"] else None,
            api_key_id=data["api_key"].pk if data["api_key"] else None,
            end_user=data["end_user"],
            since=data["since"],
            until=data["until"],
            feedback=data["feedback"],
            q=data["q"],
        )


class DashboardForm(forms.Form):
    """The dashboard's period and its optional flow or agent; always bound (the query string).
    The flows offered are those ``user`` may view."""

    days = forms.TypedChoiceField(
        label="Period",
        choices=[(days, f"Last {days} days") for days in PERIODS],
        coerce=int,
        required=False,
        empty_value=DEFAULT_PERIOD,
    )
    flow = forms.TypedChoiceField(
        label="Flow or agent", required=False, coerce=int, empty_value=None
    )

    def __init__(self, data: Any, *, user, workspace: Workspace):
        super().__init__(data)
        choices = flow_choices(user, workspace.id)
        self.fields["flow"].choices = [("", "All flows and agents"), *choices]


MAX_ALERT_EMAILS = 20
_ADDRESS_SPLIT = re.compile(r"[\s,;]+")


class AlertRuleForm(forms.Form):
    """A flow's alert rule. Whom to tell: members picked from the workspace, typed addresses,
    a webhook, or several of these; at least one."""

    name = forms.CharField(max_length=200)
    metric = forms.ChoiceField(choices=AlertMetric.choices)
    threshold = forms.FloatField(
        min_value=0, help_text="Fires when the value reaches it. Rates are in per cent."
    )
    window_minutes = forms.IntegerField(
        label="Window (minutes)",
        min_value=1,
        max_value=7 * 24 * 60,
        initial=60,
        help_text="The runs of the last so many minutes; the cost is always today's.",
    )
    min_runs = forms.IntegerField(
        label="Minimum runs",
        min_value=1,
        max_value=1_000_000,
        initial=10,
        help_text="With fewer finished runs (ratings, for feedback) the rule keeps its state.",
    )
    members = forms.MultipleChoiceField(
        label="Email members", required=False, widget=forms.CheckboxSelectMultiple
    )
    other_emails = forms.CharField(
        label="Other email addresses",
        required=False,
        max_length=4000,
        widget=forms.Textarea({"rows": 2}),
        help_text="Separated by commas or new lines.",
    )
    webhook_url = forms.URLField(
        label="Webhook URL", required=False, max_length=2000, assume_scheme="https"
    )
    webhook_secret = forms.CharField(
        label="Signing secret",
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False),
        help_text="Signs each delivery (HMAC-SHA256, header X-Studio-Signature).",
    )
    remove_secret = forms.BooleanField(label="Remove the signing secret", required=False)
    notify_resolved = forms.BooleanField(
        label="Also tell when it is resolved", required=False, initial=True
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, data: Any = None, *, workspace: Workspace, rule: AlertRule | None = None):
        member_emails = sorted(
            {
                email
                for email in get_user_model()
                .objects.filter(memberships__workspace=workspace, is_active=True)
                .exclude(email="")
                .values_list("email", flat=True)
            }
        )
        initial = None
        if rule is not None:
            initial = {
                "name": rule.name,
                "metric": rule.metric,
                "threshold": rule.threshold,
                "window_minutes": rule.window_minutes,
                "min_runs": rule.min_runs,
                "members": [e for e in rule.emails if e in member_emails],
                "other_emails": "\n".join(e for e in rule.emails if e not in member_emails),
                "webhook_url": rule.webhook_url,
                "notify_resolved": rule.notify_resolved,
                "enabled": rule.enabled,
            }
        super().__init__(data, initial=initial)
        self.rule = rule
        self.fields["members"].choices = [(email, email) for email in member_emails]
        if rule is not None and rule.webhook_secret:
            self.fields["webhook_secret"].help_text = "Set: leave blank to keep it."
        else:
            del self.fields["remove_secret"]

    def clean_other_emails(self) -> list[str]:
        addresses = [a for a in _ADDRESS_SPLIT.split(self.cleaned_data["other_emails"]) if a]
        bad = []
        for address in addresses:
            try:
                validate_email(address)
            except forms.ValidationError:
                bad.append(address)
        if bad:
            raise forms.ValidationError(f"Not an email address: {', '.join(bad[:5])}.")
        return addresses

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data["webhook_url"]
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise forms.ValidationError("The webhook must be an http or https URL.")
        return url

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        metric, threshold = cleaned.get("metric"), cleaned.get("threshold")
        rates = (AlertMetric.ERROR_RATE, AlertMetric.NEGATIVE_FEEDBACK_RATE)
        if metric in rates and threshold is not None and threshold > 100:
            self.add_error("threshold", "A rate is in per cent: at most 100.")
        emails = list(
            dict.fromkeys([*cleaned.get("members", []), *cleaned.get("other_emails", [])])
        )
        if len(emails) > MAX_ALERT_EMAILS:
            self.add_error("other_emails", f"At most {MAX_ALERT_EMAILS} addresses.")
        if not emails and not cleaned.get("webhook_url") and not self.has_error("webhook_url"):
            raise forms.ValidationError(
                "Choose who is told: a member, an email address or a webhook."
            )
        cleaned["emails"] = emails
        return cleaned

    def values(self) -> AlertRuleValues:
        data = self.cleaned_data
        secret = data["webhook_secret"] or None
        if data.get("remove_secret"):
            secret = ""
        return AlertRuleValues(
            name=data["name"],
            metric=data["metric"],
            threshold=data["threshold"],
            window_minutes=data["window_minutes"],
            min_runs=data["min_runs"],
            emails=data["emails"],
            webhook_url=data["webhook_url"],
            webhook_secret=secret,
            notify_resolved=data["notify_resolved"],
            enabled=data["enabled"],
        )
