"""The usage page's filters."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from catalog.selectors import models_visible
from catalog.selectors.usage import usage_agent_slugs, usage_flow_slugs
from workspaces.models import Workspace
from workspaces.selectors import keys_for

DEFAULT_DAYS = 30
# The per-day series has one point per day of the range: a year keeps the page and the JSON small.
MAX_DAYS = 366

SOURCES = [("", "Any source"), ("flow", "Flow"), ("playground", "Playground"), ("agent", "Agent")]


class UsageFilterForm(forms.Form):
    """Always bound: an end date left out or blank means today, a start date the 30 days up to
    the end. Choices are what ``user`` may see: a model, key or flow of another workspace (or one
    hidden from a limited member) is "not one of the available choices", never a 404 or 500."""

    since = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    model = forms.ModelChoiceField(queryset=None, required=False, empty_label="Any model")
    flow = forms.ChoiceField(required=False)
    api_key = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="Any API key", label="API key"
    )
    source = forms.ChoiceField(choices=SOURCES, required=False)
    agent = forms.ChoiceField(required=False)

    def __init__(self, data: Any, *, user, workspace: Workspace) -> None:
        data = data.copy()
        today = timezone.localdate()
        if not data.get("until"):
            data["until"] = today.isoformat()
        if not data.get("since"):
            try:
                end = date.fromisoformat(data["until"])
            except ValueError:
                end = today  # the end date's own error is reported by its field
            data["since"] = (end - timedelta(days=DEFAULT_DAYS - 1)).isoformat()
        super().__init__(data)
        self.fields["model"].queryset = models_visible(user, workspace.id).order_by("name")
        # A workspace's own model and a shared one may have the same name, never the same slug.
        self.fields["model"].label_from_instance = lambda model: f"{model.name} ({model.slug})"
        self.fields["api_key"].queryset = keys_for(user, workspace)
        flows = usage_flow_slugs(user, workspace.id)
        self.fields["flow"].choices = [("", "Any flow")] + [(slug, slug) for slug in flows]
        agents = usage_agent_slugs(user, workspace.id)
        self.fields["agent"].choices = [("", "Any agent")] + [(slug, slug) for slug in agents]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until:
            if since > until:
                raise forms.ValidationError("The start date is after the end date.")
            if (until - since).days + 1 > MAX_DAYS:
                raise forms.ValidationError(f"Choose a range of at most {MAX_DAYS} days.")
        return cleaned

    def filters(self) -> dict[str, Any]:
        """The cleaned filters as ``usage_filtered``'s keyword arguments."""
        data = self.cleaned_data
        return {
            "since": data["since"],
            "until": data["until"],
            "model_id": data["model"].id if data["model"] else None,
            "flow_slug": data["flow"],
            "api_key_id": data["api_key"].id if data["api_key"] else None,
            "source": data["source"],
            "agent_slug": data["agent"],
        }
