"""Bearer API-key authentication for the JSON APIs: the request's live key, admitted against
its own and its workspace's request and token limits; or the answer in the APIs' shape saying
why not (401 for a key that may not act, 429 for a limit reached)."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse

from studio.json_api import error, unauthorized
from studio.quotas import Admission, Refusal
from workspaces.access import KeyRefused, authenticate_api_key
from workspaces.models import ApiKey
from workspaces.quotas import api_key_admit, api_key_limits


def too_many_requests(refusal: Refusal) -> JsonResponse:
    """The 429 of a limit reached, as OpenAI answers it: ``rate_limit_exceeded`` for requests
    per minute, ``insufficient_quota`` for tokens per day; ``Retry-After`` in whole seconds."""
    if refusal.kind == "requests":
        response = error(429, refusal.message, "rate_limit_error", "rate_limit_exceeded")
        response["X-RateLimit-Limit-Requests"] = str(refusal.limit)
        response["X-RateLimit-Remaining-Requests"] = "0"
    else:
        response = error(429, refusal.message, "insufficient_quota", "insufficient_quota")
        response["X-RateLimit-Limit-Tokens"] = str(refusal.limit)
        response["X-RateLimit-Remaining-Tokens"] = "0"
    response["Retry-After"] = str(refusal.retry_after)
    return response


def rate_limit_headers(api_key: ApiKey, admission: Admission) -> dict[str, str]:
    """The tightest requests-per-minute limit of the key and its workspace and what is left of
    it this minute; empty when neither has one."""
    left = [
        (limit.requests_per_minute - count, limit.requests_per_minute)
        for limit, count in zip(api_key_limits(api_key), admission.requests, strict=False)
        if limit.requests_per_minute is not None
    ]
    if not left:
        return {}
    remaining, most = min(left)
    return {
        "X-RateLimit-Limit-Requests": str(most),
        "X-RateLimit-Remaining-Requests": str(max(0, remaining)),
    }


def authenticate_sync(request: HttpRequest) -> ApiKey | JsonResponse:
    """The request's live API key, counted as one request against its limits; or the 401
    answer (saying why for a known key), or the 429 of a limit reached (counting nothing)."""
    try:
        api_key = authenticate_api_key(request.headers.get("Authorization"))
    except KeyRefused as exc:
        return unauthorized(str(exc))
    if api_key is None:
        return unauthorized()
    admission = api_key_admit(api_key)
    if admission.refusal is not None:
        return too_many_requests(admission.refusal)
    # The counts are known only here: ``studio.headers``' middleware puts them on the answer.
    request.extra_headers = rate_limit_headers(api_key, admission)
    return api_key


async def authenticate(request: HttpRequest) -> ApiKey | JsonResponse:
    return await sync_to_async(authenticate_sync)(request)
