"""Security headers on every response: a Content-Security-Policy that runs no inline script,
and a Permissions-Policy; and the headers a request's handling set in
``request.extra_headers``. Django's SecurityMiddleware sets the others (settings.py)."""

from __future__ import annotations

import re
from collections.abc import Callable

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

# Scripts only from our own files: an injected <script> or on…= handler does not run.
# Styles may be inline: the editor (React Flow) and htmx inject <style> elements, and an
# injected style cannot run code (GitHub's policy makes the same trade).
POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# Powerful browser features no page of the studio uses.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
        "browsing-topics",
    )
)
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?")


def content_security_policy(request: HttpRequest, **overrides: str) -> str:
    """The policy for ``request``'s page; its WebSockets (run events) go to the same host,
    which browsers before CSP 3 do not count as 'self'. ``overrides``: directives a page sets
    otherwise (``frame_ancestors=…`` for ``frame-ancestors``), for a view that sets the header
    itself (the middleware then leaves it)."""
    connect = "'self'"
    try:
        host = request.get_host()
    except DisallowedHost:  # the page is Django's 400, which needs no socket
        host = ""
    if _HOST.fullmatch(host):
        connect += f" wss://{host}" if request.is_secure() else f" ws://{host} wss://{host}"
    policy = POLICY | {"connect-src": connect}
    policy |= {name.replace("_", "-"): sources for name, sources in overrides.items()}
    return "; ".join(f"{directive} {sources}" for directive, sources in policy.items())


def _add_headers(request: HttpRequest, response: HttpResponseBase) -> None:
    response.headers.setdefault("Content-Security-Policy", content_security_policy(request))
    response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    # Headers the request's handling asked for before its view answered (the rate-limit counts
    # an API key's authentication learns), so that a streamed answer carries them too.
    for name, value in getattr(request, "extra_headers", {}).items():
        response.headers.setdefault(name, value)


@sync_and_async_middleware
def security_headers(get_response: Callable) -> Callable:
    """First in MIDDLEWARE, so that every answer gets them: lockouts, CSRF failures, errors."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            response = await get_response(request)
            _add_headers(request, response)
            return response

    else:

        def middleware(request: HttpRequest) -> HttpResponseBase:
            response = get_response(request)
            _add_headers(request, response)
            return response

    return middleware
