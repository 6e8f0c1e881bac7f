"""The studio's error pages (404, 403, 500 and a refused form's CSRF check), inside its layout
with a way back; the APIs under ``/api/``, ``/v1/`` and ``/mcp/`` answer the same errors as JSON."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import render
from django.template import loader

from studio import json_api

API_PREFIXES = ("/api/", "/v1/", "/mcp/")


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return json_api.error(404, "No such endpoint or object.", code="not_found")
    return render(request, "404.html", status=404)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return json_api.error(403, "Permission denied.", "permission_error")
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _is_api(request):
        return json_api.error(403, "CSRF check failed.", "permission_error", "csrf_failed")
    return render(request, "403_csrf.html", status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    """Rendered without the request: whatever broke (the database, a context processor) must
    not break the error page too."""
    if _is_api(request):
        return json_api.error(500, "The server failed; try again.", "server_error")
    return HttpResponseServerError(loader.get_template("500.html").render())
