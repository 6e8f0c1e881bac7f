"""The chat settings form: validated at the edge, bounded like everything an editor types."""

from __future__ import annotations

from django import forms

MAX_SUGGESTIONS = 6
SUGGESTION_LENGTH = 200


class ChatSettingsForm(forms.Form):
    opening = forms.CharField(
        label="Opening message",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What the chat says before the first message (Markdown).",
    )
    suggestions = forms.CharField(
        label="Suggested questions",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=f"One a line, at most {MAX_SUGGESTIONS}; a click sends it.",
    )

    def clean_opening(self) -> str:
        return self.cleaned_data["opening"].strip()

    def clean_suggestions(self) -> list[str]:
        lines = [" ".join(line.split()) for line in self.cleaned_data["suggestions"].splitlines()]
        lines = [line for line in lines if line]
        if len(lines) > MAX_SUGGESTIONS:
            raise forms.ValidationError(f"At most {MAX_SUGGESTIONS} suggested questions.")
        if any(len(line) > SUGGESTION_LENGTH for line in lines):
            raise forms.ValidationError(
                f"A suggested question has at most {SUGGESTION_LENGTH} characters."
            )
        return lines
