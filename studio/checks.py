"""System checks of the studio's own settings (``manage.py check --deploy``)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def secret_key_from_environment(app_configs=None, **kwargs) -> list[Warning]:
    """A key made on first start lives in one machine's ``var/secret_key``: a web process and a
    worker on two machines would each make their own, and each refuse the other's signatures
    (sessions, password reset links, credentials encrypted with a key derived from it)."""
    if not getattr(settings, "SECRET_KEY_FROM_FILE", False):
        return []
    return [
        Warning(
            f"SECRET_KEY is read from {settings.VAR_DIR / 'secret_key'}, a file of this "
            "machine only.",
            hint="Set SECRET_KEY in the environment of every web and worker process.",
            id="studio.W001",
        )
    ]
