"""The chat and embed settings forms: validated at the edge, bounded like everything an editor
types."""

from __future__ import annotations

from django import forms

from conversations.origins import MAX_ORIGINS, OriginError, origins_parse
from conversations.widget import MAX_REQUESTS_PER_MINUTE, MAX_TOKENS_PER_DAY, EmbedSettings

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


class EmbedSettingsForm(forms.Form):
    enabled = forms.BooleanField(label="Embed widget on", required=False)
    allowed_origins = forms.CharField(
        label="Allowed web sites",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://www.example.com"}),
        help_text=(
            f"The origins (https://host[:port]) whose pages may show the widget, one a line, at "
            f"most {MAX_ORIGINS}. No others may frame it or use its tokens."
        ),
    )
    title = forms.CharField(label="Widget title", required=False, max_length=100)
    colour = forms.RegexField(
        label="Colour",
        regex=r"^#[0-9A-Fa-f]{6}$",
        initial="#2563eb",
        error_messages={"invalid": "A colour is written #rrggbb, like #2563eb."},
        widget=forms.TextInput(attrs={"type": "color"}),
    )
    sign_in_required = forms.BooleanField(
        label="End users must sign in with a studio account", required=False
    )
    remote_images = forms.BooleanField(
        label="Answers may show images from other servers",
        required=False,
        help_text="Each image tells its server that someone read the answer.",
    )
    requests_per_minute = forms.IntegerField(
        label="Messages a minute per end user",
        required=False,
        min_value=1,
        max_value=MAX_REQUESTS_PER_MINUTE,
        help_text="Empty: no limit beyond the workspace's.",
    )
    tokens_per_day = forms.IntegerField(
        label="Tokens a day per end user",
        required=False,
        min_value=1,
        max_value=MAX_TOKENS_PER_DAY,
    )

    def clean_allowed_origins(self) -> list[str]:
        try:
            return origins_parse(self.cleaned_data["allowed_origins"])
        except OriginError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_colour(self) -> str:
        return self.cleaned_data["colour"].lower()

    def embed_settings(self) -> EmbedSettings:
        data = self.cleaned_data
        return EmbedSettings(
            enabled=data["enabled"],
            allowed_origins=data["allowed_origins"],
            title=" ".join(data["title"].split()),
            colour=data["colour"],
            sign_in_required=data["sign_in_required"],
            remote_images=data["remote_images"],
            requests_per_minute=data["requests_per_minute"],
            tokens_per_day=data["tokens_per_day"],
        )

    @classmethod
    def of(cls, settings) -> EmbedSettingsForm:
        return cls(
            initial={
                "enabled": settings.embed_enabled,
                "allowed_origins": "\n".join(settings.allowed_origins),
                "title": settings.widget_title,
                "colour": settings.widget_colour,
                "sign_in_required": settings.sign_in_required,
                "remote_images": settings.remote_images,
                "requests_per_minute": settings.end_user_requests_per_minute,
                "tokens_per_day": settings.end_user_tokens_per_day,
            }
        )
