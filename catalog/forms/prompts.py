"""Forms of the prompt library. They check shape only; the services check the rest (a taken
slug, a published version) and the views put those errors back on the form."""

from __future__ import annotations

from django import forms

from catalog.models import Prompt
from catalog.services.prompts import MAX_TEXT
from studio.slugs import SlugFromNameMixin

_CODE = {"class": "code", "spellcheck": "false"}


class PromptTextForm(forms.Form):
    """The text of a version: what a new version, an edit and a new prompt all ask for."""

    system = forms.CharField(
        required=False,
        max_length=MAX_TEXT,
        strip=False,  # whitespace in a prompt is the author's, not noise
        widget=forms.Textarea(attrs={**_CODE, "rows": 5}),
        help_text="Sent as the system message.",
    )
    template = forms.CharField(
        max_length=MAX_TEXT,
        strip=False,
        widget=forms.Textarea(attrs={**_CODE, "rows": 14}),
        help_text="The user message. Write {{ name }} where a flow fills in a value.",
    )


class PromptVersionForm(PromptTextForm):
    note = forms.CharField(
        required=False,
        max_length=500,
        help_text="What changed and why, for whoever reviews it.",
    )


class PromptCreateForm(SlugFromNameMixin, PromptTextForm):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=100, help_text="How flows name the prompt (library_prompt); cannot change."
    )
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5_000
    )

    field_order = ["name", "slug", "description", "system", "template"]

    def __init__(self, *args, workspace_id: int | None = None, **kwargs) -> None:
        """``workspace_id``: where the prompt goes, so that a slug made from the name is one
        no prompt there has yet (without it, a taken slug is the service's error)."""
        super().__init__(*args, **kwargs)
        if workspace_id is not None:
            self.slug_taken = Prompt.objects.filter(workspace_id=workspace_id)
        self.slug_from_name_setup()
