"""Password reset by email: Django's views, with the link's lifetime from settings
(``PASSWORD_RESET_TIMEOUT``), requests throttled per address and per email, and the same
answer whether or not an account has the address."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpResponse

from studio.throttle import throttle_hit

HOUR_S = 3600


def _lifetime() -> dict[str, int]:
    return {"timeout_minutes": settings.PASSWORD_RESET_TIMEOUT // 60}


class PasswordResetRequest(auth_views.PasswordResetView):
    """Django's form; past the hourly limit for the address or for the email asked about, a
    429 and no mail (mail bombing one inbox or probing many from one host both stop here)."""

    @property
    def extra_email_context(self) -> dict[str, int]:
        return _lifetime()

    def form_valid(self, form) -> HttpResponse:
        email = form.cleaned_data["email"].strip().lower()
        limit = settings.STUDIO_PASSWORD_RESET_PER_HOUR
        # Both counted on every request, so that spreading over one of them does not help.
        allowed = [
            throttle_hit(
                key=f"password-reset:address:{self.request.META.get('REMOTE_ADDR', '')}",
                limit=limit,
                window_s=HOUR_S,
            ),
            throttle_hit(
                key=f"password-reset:email:{hashlib.sha256(email.encode()).hexdigest()}",
                limit=limit,
                window_s=HOUR_S,
            ),
        ]
        if not all(allowed):
            return self.render_to_response(self.get_context_data(throttled=True), status=429)
        return super().form_valid(form)


class PasswordResetConfirm(auth_views.PasswordResetConfirmView):
    """Django's view (a used, expired or forged link shows "invalid"), answering 404 for such
    a link: there is nothing at that address."""

    def render_to_response(self, context, **kwargs) -> HttpResponse:
        if not context.get("validlink"):
            kwargs["status"] = 404
        return super().render_to_response(context, **kwargs)


class PasswordResetSent(auth_views.PasswordResetDoneView):
    """The same page whether or not an account has the address."""

    def get_context_data(self, **kwargs) -> dict:
        return super().get_context_data(**kwargs) | _lifetime()
