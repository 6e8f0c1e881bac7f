"""Login throttling: django-axes per account and address, plus a limit per address alone."""

from __future__ import annotations

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


class LoginThrottle(AxesDatabaseHandler):
    """axes' database handler that also locks out an address whose failures across every
    username reach ``STUDIO_LOGIN_ADDRESS_FAILURE_LIMIT`` (password spraying: one password
    tried against many accounts never trips the per-account limit).

    axes compares every combination of ``AXES_LOCKOUT_PARAMETERS`` with one limit, and five
    failures per address would lock a whole office behind one NAT out after five typos; so the
    address has its own, higher limit, and reaching it counts as reaching axes' limit. Like
    axes' own counts, it lasts ``AXES_COOLOFF_TIME`` and a good login of one account does not
    clear the address's failures on the others.
    """

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        failures = super().get_failures(request, credentials)
        if address_failures(request) >= settings.STUDIO_LOGIN_ADDRESS_FAILURE_LIMIT:
            return max(failures, get_failure_limit(request, credentials))
        return failures


def address_failures(request: HttpRequest) -> int:
    """Failed logins from the request's address, any username, within the cool-off time."""
    attempts = AccessAttempt.objects.filter(
        ip_address=request.axes_ip_address, attempt_time__gt=get_cool_off_threshold(request)
    )
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
