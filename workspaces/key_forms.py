"""Forms of the API keys page: a key's scopes (access per kind, chosen objects, expiry) and
the request and token limits of a key or of the workspace."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.apps import apps
from django.utils import timezone

from studio import access
from workspaces.models import (
    MAX_REQUESTS_PER_MINUTE,
    MAX_TOKENS_PER_DAY,
    FlowAccess,
    KnowledgeAccess,
    Workspace,
)
from workspaces.services import KeyScopes

SELECTION = [("all", "All, now and later"), ("chosen", "Only the chosen ones")]
# As GitHub's fine-grained tokens: keys expire unless someone decides they should not.
EXPIRY_DAYS = [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year")]
NEVER = ("never", "No expiry")
KEEP = ("keep", "Keep the current expiry")
# What a field left out of a request means: the least access (a script posting a name only
# gets a key that reaches nothing until it is re-scoped).
LEAST = {
    "flow_access": FlowAccess.NONE,
    "flow_selection": "chosen",
    "knowledge_access": KnowledgeAccess.NONE,
    "knowledge_selection": "chosen",
    "expires_in": "90",
}


class KeyScopeForm(forms.Form):
    """The scopes of a key that ``user`` makes or changes: only objects they may see are
    offered, and the service checks the same again."""

    flow_access = forms.ChoiceField(choices=FlowAccess.choices, initial=FlowAccess.RUN)
    flow_selection = forms.ChoiceField(
        choices=SELECTION, initial="chosen", widget=forms.RadioSelect
    )
    flows = forms.ModelMultipleChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple
    )
    knowledge_access = forms.ChoiceField(
        choices=KnowledgeAccess.choices, initial=KnowledgeAccess.NONE
    )
    knowledge_selection = forms.ChoiceField(
        choices=SELECTION, initial="chosen", widget=forms.RadioSelect
    )
    knowledge_bases = forms.ModelMultipleChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple
    )
    expires_in = forms.ChoiceField(choices=[*EXPIRY_DAYS, NEVER], initial="90")

    def __init__(self, *args, user, workspace: Workspace, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if self.is_bound:
            self.data = self.data.copy()
            least = {**LEAST, "expires_in": KEEP[0]} if editing else LEAST
            for name, value in least.items():
                self.data.setdefault(self.add_prefix(name), value)
        flow_model = apps.get_model("flows.Flow")
        base_model = apps.get_model("knowledge.KnowledgeBase")
        self.fields["flows"].queryset = access.scope(
            user, workspace.id, flow_model.objects.filter(kind="flow").order_by("slug"), "view"
        )
        self.fields["knowledge_bases"].queryset = access.scope(
            user, workspace.id, base_model.objects.order_by("slug"), "view"
        )
        if editing:
            self.fields["expires_in"].choices = [KEEP, *EXPIRY_DAYS, NEVER]
            self.fields["expires_in"].initial = KEEP[0]

    def scopes(self, current_expiry=None) -> KeyScopes:
        data = self.cleaned_data
        expires_in = data["expires_in"]
        if expires_in == KEEP[0]:
            expires_at = current_expiry
        elif expires_in == NEVER[0]:
            expires_at = None
        else:
            expires_at = timezone.now() + timedelta(days=int(expires_in))
        return KeyScopes(
            flow_access=data["flow_access"],
            flow_ids=_chosen(data["flow_selection"], data["flows"]),
            knowledge_access=data["knowledge_access"],
            knowledge_base_ids=_chosen(data["knowledge_selection"], data["knowledge_bases"]),
            expires_at=expires_at,
        )


def _chosen(selection: str, objects) -> list[int] | None:
    return None if selection == "all" else [o.pk for o in objects]


class LimitsForm(forms.Form):
    """Requests per minute and tokens per day; empty: no limit."""

    requests_per_minute = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_REQUESTS_PER_MINUTE,
        help_text="Empty: no limit.",
    )
    tokens_per_day = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_TOKENS_PER_DAY,
        help_text="Input and output tokens of every model call, per UTC day. Empty: no limit.",
    )

    def limits(self) -> dict[str, int | None]:
        return {
            "requests_per_minute": self.cleaned_data["requests_per_minute"],
            "tokens_per_day": self.cleaned_data["tokens_per_day"],
        }


def limits_initial(owner) -> dict:
    """A limits form's starting values: the key's or workspace's limits as they are."""
    return {
        "requests_per_minute": owner.requests_per_minute,
        "tokens_per_day": owner.tokens_per_day,
    }


class KeyCreateForm(KeyScopeForm, LimitsForm):
    name = forms.CharField(max_length=200)

    field_order = ["name"]


def key_initial(api_key) -> dict:
    """The edit form's starting values: the key's scopes as they are."""
    return {
        "flow_access": api_key.flow_access,
        "flow_selection": "all" if api_key.flow_ids is None else "chosen",
        "flows": api_key.flow_ids or [],
        "knowledge_access": api_key.knowledge_access,
        "knowledge_selection": "all" if api_key.knowledge_base_ids is None else "chosen",
        "knowledge_bases": api_key.knowledge_base_ids or [],
    }
