"""The credential forms: a name, the secret (never rendered back) and where HTTP request nodes
may send it; and the allowed hosts alone, to change them later."""

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
    allowed_hosts = forms.CharField(
        max_length=5000,
        required=False,
        label="Allowed hosts",
        help_text="Where HTTP request nodes may send it, e.g. api.github.com, *.example.com "
        "(commas or spaces between). Empty: HTTP request nodes may not use it; catalog models "
        "may.",
    )


class CredentialHostsForm(forms.Form):
    allowed_hosts = forms.CharField(max_length=5000, required=False, label="Allowed hosts")
