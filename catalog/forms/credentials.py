"""The credential form: a name and the secret, which is never rendered back."""

from __future__ import annotations

from django import forms


class CredentialForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="e.g. OpenAI production")
    # render_value=False: a form shown again after an error does not echo the secret.
    secret = forms.CharField(
        max_length=4096,
        strip=True,
        label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted; it is never shown again, only its last four characters.",
    )
