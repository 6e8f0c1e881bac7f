"""``/metrics``: the Prometheus text exposition, for a scraper holding the metrics token."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from observe.metrics import metrics_registry


def _authorized(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant time: the comparison tells nothing of how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """404 while ``STUDIO_METRICS_TOKEN`` is unset (the endpoint does not exist), 401 without
    ``Authorization: Bearer <token>``."""
    token = settings.STUDIO_METRICS_TOKEN
    if not token:
        raise Http404("metrics are off")
    if not _authorized(request, token):
        response = HttpResponse("a bearer token is required\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
