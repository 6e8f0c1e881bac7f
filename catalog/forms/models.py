"""Forms of the catalog's model pages: the filters, a model entry, a LoRA adapter.

The entry form only turns what was typed into values (JSON text into dicts, a comma list into
tags) and checks them with the same functions the services use (``catalog.schemas``), so its
errors are the services' errors, shown next to their fields.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from catalog import schemas
from catalog.engines import engine_kinds
from catalog.models import Credential, Model, Source, Status, Task
from catalog.selectors.credentials import credentials_attachable, may_manage_credentials
from catalog.services.models import DTYPES
from studio.slugs import SlugFromNameMixin

MAX_CARD_LENGTH = 100_000


def _any(choices) -> list[tuple[str, str]]:
    return [("", "any"), *choices]


class ModelFilterForm(forms.Form):
    """The catalog page's filters (GET parameters); a bad value is ignored, not an error page."""

    q = forms.CharField(required=False, max_length=200, label="Search")
    task = forms.ChoiceField(required=False, choices=_any(Task.choices))
    engine = forms.ChoiceField(required=False)
    source = forms.ChoiceField(required=False, choices=_any(Source.choices))
    tag = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=_any(Status.choices))

    def __init__(self, *args, tags: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["engine"].choices = _any((kind, kind) for kind in engine_kinds())
        self.fields["tag"].choices = _any((tag, tag) for tag in tags)
        self.fields["q"].widget.attrs.update(
            placeholder="name, slug, description or tag", type="search"
        )

    def filters(self) -> dict[str, str]:
        """The valid filters (call after ``is_valid()``): invalid ones are dropped."""
        return {name: value for name, value in self.cleaned_data.items() if value}


def _json_text(value: Any) -> str:
    return json.dumps(value or {}, indent=2, sort_keys=True)


def _parse_json(text: str) -> Any:
    text = (text or "").strip()
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"This is not valid JSON ({exc}).") from None


class ModelEntryForm(SlugFromNameMixin, forms.Form):
    """A catalog entry's fields. The credentials offered are those ``user`` may attach in the
    entry's workspace (``workspace_id``; None, a shared entry: none), plus the entry's own
    (``current``) so that keeping it is not an error: only an admin who manages credentials
    chooses one (``catalog.services.models`` enforces it again, for any caller)."""

    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=100, help_text="How flows and the API name the model, e.g. qwen2-7b-chat."
    )
    task = forms.ChoiceField(choices=Task.choices)
    source = forms.ChoiceField(choices=Source.choices)
    status = forms.ChoiceField(choices=Status.choices)
    engine = forms.ChoiceField(help_text="What serves the model.")
    weights = forms.CharField(
        max_length=500,
        required=False,
        help_text='A Hugging Face repo id, a local folder, or "bundled:<name>".',
    )
    revision = forms.CharField(
        max_length=100, required=False, help_text="A branch, tag or commit of the weights."
    )
    quantization = forms.CharField(
        max_length=32, required=False, help_text="awq, gptq, fp8… (empty: none)"
    )
    dtype = forms.ChoiceField(choices=[("", "default"), *((d, d) for d in DTYPES)], required=False)
    context_length = forms.IntegerField(min_value=1, max_value=10_000_000, initial=2048)
    settings = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "class": "code", "spellcheck": "false"}),
        required=False,
        label="Engine settings",
        help_text="A JSON object, checked by the engine's own settings schema.",
    )
    sampling = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "class": "code", "spellcheck": "false"}),
        required=False,
        label="Default sampling",
        help_text='JSON: {"temperature": 0..2, "top_p": 0..1, "max_tokens": 1..32768}, all '
        "optional; a flow node's own values win.",
    )
    price_input = forms.DecimalField(
        max_digits=12, decimal_places=4, min_value=0, initial=0, label="Input price"
    )
    price_output = forms.DecimalField(
        max_digits=12, decimal_places=4, min_value=0, initial=0, label="Output price"
    )
    tags = forms.CharField(
        max_length=1000,
        required=False,
        help_text=f"Comma-separated, at most {schemas.MAX_TAGS}; stored lowercase.",
    )
    credential = forms.ModelChoiceField(
        queryset=Credential.objects.none(),
        required=False,
        empty_label="none",
        help_text="The API key a remote endpoint needs (from this workspace's credentials).",
        error_messages={
            "invalid_choice": "That credential does not exist here or you may not attach it."
        },
    )
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=5000
    )
    card = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "class": "code"}),
        required=False,
        max_length=MAX_CARD_LENGTH,
        label="Model card",
        help_text="Markdown (raw HTML is shown as text).",
    )

    def __init__(
        self, *args, workspace_id: int | None, user, current: Credential | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.slug_taken = Model.objects.filter(workspace_id=workspace_id)
        self.slug_from_name_setup()
        self.fields["engine"].choices = [(kind, kind) for kind in engine_kinds()]
        credentials = credentials_attachable(user, workspace_id)
        if current is not None:
            credentials = credentials | Credential.objects.filter(pk=current.pk)
        self.fields["credential"].queryset = credentials.defer("ciphertext")
        if not may_manage_credentials(user, workspace_id):
            self.fields["credential"].help_text = (
                "The API key a remote endpoint needs. Only an admin who manages credentials "
                "may choose it, or change the engine or its settings while one is set."
            )
        self.fields["credential"].label_from_instance = lambda c: (
            f"{c.name} (…{c.hint})" if c.hint else c.name
        )

    @staticmethod
    def initial_for(model: Model) -> dict[str, Any]:
        """The form's initial values from an entry (JSON fields as indented text)."""
        return {
            "name": model.name,
            "slug": model.slug,
            "task": model.task,
            "source": model.source,
            "status": model.status,
            "engine": model.engine,
            "weights": model.weights,
            "revision": model.revision,
            "quantization": model.quantization,
            "dtype": model.dtype,
            "context_length": model.context_length,
            "settings": _json_text(model.settings),
            "sampling": _json_text(model.sampling),
            "price_input": model.price_input,
            "price_output": model.price_output,
            "tags": ", ".join(model.tags),
            "credential": model.credential_id,
            "description": model.description,
            "card": model.card,
        }

    def clean_sampling(self) -> dict:
        return schemas.sampling_clean(_parse_json(self.cleaned_data["sampling"]))

    def clean_settings(self) -> Any:
        # Checked against the engine in clean(), once the engine field is known to be valid.
        return _parse_json(self.cleaned_data["settings"])

    def clean_tags(self) -> list[str]:
        return schemas.tags_clean(self.cleaned_data["tags"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "engine" in cleaned and "settings" in cleaned:
            try:
                cleaned["settings"] = schemas.engine_settings_clean(
                    cleaned["engine"], cleaned["settings"]
                )
            except ValidationError as exc:
                self.add_error("settings", exc)
        return cleaned

    def changes(self) -> dict[str, Any]:
        """The cleaned values of the fields the user changed (for an edit)."""
        return {name: self.cleaned_data[name] for name in self.changed_data}


class AdapterForm(SlugFromNameMixin, forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=100)
    weights = forms.CharField(
        max_length=500, help_text="A Hugging Face repo id or a local folder of the adapter."
    )
    description = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slug_from_name_setup()
