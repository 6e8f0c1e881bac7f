"""The runs list's filters: every query parameter validated, a bad one a form error."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from flows.models import RunSource, RunStatus
from observe.dashboards import PERIODS
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
