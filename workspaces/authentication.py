"""Bearer API-key authentication for the JSON APIs: the request's live key, or the 401 answer
in the APIs' shape saying why a known key may not act."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse

from studio.json_api import unauthorized
from workspaces.access import KeyRefused, authenticate_api_key
from workspaces.models import ApiKey


def authenticate_sync(request: HttpRequest) -> ApiKey | JsonResponse:
    """The request's live API key, or the 401 answer (saying why for a known key)."""
    try:
        api_key = authenticate_api_key(request.headers.get("Authorization"))
    except KeyRefused as exc:
        return unauthorized(str(exc))
    return api_key if api_key is not None else unauthorized()


async def authenticate(request: HttpRequest) -> ApiKey | JsonResponse:
    return await sync_to_async(authenticate_sync)(request)
