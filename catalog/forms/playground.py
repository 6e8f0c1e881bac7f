"""The compare playground's form: two models, a prompt and the sampling settings."""

from __future__ import annotations

from django import forms
from django.http import Http404

from catalog.access import access_model
from catalog.models import Model, Status, Task

MAX_PROMPT = 100_000
MAX_TOKENS = 8192


class PlaygroundForm(forms.Form):
    """Both models are fetched through the access layer while the form is cleaned.

    So an id of a model the user may not see (another workspace's, or one hidden from a limited
    member) raises Http404, and one they may see but not use PermissionDenied, out of
    ``is_valid()``, as any other access check would: an id is not a typing mistake to correct
    in the form. A model of the wrong kind is a form error.
    """

    model_a = forms.IntegerField(label="Model A", widget=forms.Select)
    model_b = forms.IntegerField(label="Model B", widget=forms.Select)
    system = forms.CharField(
        label="System prompt",
        required=False,
        max_length=MAX_PROMPT,
        strip=False,  # whitespace in a prompt is the author's, not noise
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    prompt = forms.CharField(
        label="Prompt", max_length=MAX_PROMPT, strip=False, widget=forms.Textarea(attrs={"rows": 5})
    )
    temperature = forms.FloatField(
        min_value=0.0,
        max_value=2.0,
        initial=0.7,
        widget=forms.NumberInput(attrs={"step": "0.1"}),
    )
    max_tokens = forms.IntegerField(min_value=1, max_value=MAX_TOKENS, initial=256)

    def __init__(self, *args, user, workspace, models, **kwargs) -> None:
        """``models``: the chat models offered (``selectors.playground.playground_models``)."""
        kwargs.setdefault("label_suffix", "")  # the labels sit above their fields
        super().__init__(*args, **kwargs)
        self.user = user
        self.workspace = workspace
        choices = [(m.id, f"{m.name} ({m.slug})") for m in models]
        for name in ("model_a", "model_b"):
            self.fields[name].widget.choices = choices

    def _model(self, name: str) -> Model:
        model = access_model(self.user, self.cleaned_data[name], "use")
        # A shared model or one of the workspace worked in: never one of the user's other
        # workspaces, whose usage this one must not be billed for.
        if model.workspace_id not in (None, self.workspace.id):
            raise Http404
        if model.task != Task.CHAT:
            raise forms.ValidationError(
                f"{model.name} is not a chat model (its task is {model.get_task_display()})."
            )
        if model.status == Status.UNAVAILABLE:
            raise forms.ValidationError(f"{model.name} is unavailable.")
        return model

    def clean_model_a(self) -> Model:
        return self._model("model_a")

    def clean_model_b(self) -> Model:
        return self._model("model_b")

    def clean_prompt(self) -> str:
        prompt = self.cleaned_data["prompt"]
        if not prompt.strip():
            raise forms.ValidationError("Type a prompt first.")
        return prompt
