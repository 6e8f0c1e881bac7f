"""Pieces every JSON API of the studio shares: errors in one shape (OpenAI's), Bearer API-key
authentication (401 with the reason, 403 for a scope that does not reach), and request bodies
validated by a pydantic schema with a size limit."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from pydantic import BaseModel
from pydantic import ValidationError as SchemaError

from studio import access
from studio.models import ApiKey

MAX_BODY = 1_000_000


def error(status: int, message: str, type_: str = "invalid_request_error", code=None):
    return JsonResponse({"error": {"message": message, "type": type_, "code": code}}, status=status)


def unauthorized(message: str = "Missing or invalid API key.") -> JsonResponse:
    response = error(401, message, "authentication_error", "invalid_api_key")
    response["WWW-Authenticate"] = 'Bearer realm="studio"'
    return response


def forbidden(exc: PermissionDenied) -> JsonResponse:
    """The 403 for a key whose scope does not reach: the access layer's reason."""
    message = str(exc) or "This API key may not do that."
    return error(403, message, "permission_error", "insufficient_scope")


def authenticate_sync(request: HttpRequest) -> ApiKey | JsonResponse:
    """The request's live API key, or the 401 answer (saying why for a known key)."""
    try:
        api_key = access.authenticate_api_key(request.headers.get("Authorization"))
    except access.KeyRefused as exc:
        return unauthorized(str(exc))
    return api_key if api_key is not None else unauthorized()


async def authenticate(request: HttpRequest) -> ApiKey | JsonResponse:
    return await sync_to_async(authenticate_sync)(request)


def parse_body(request: HttpRequest, schema: type[BaseModel]):
    """The request's JSON body validated by ``schema``, or an error response."""
    if len(request.body) > MAX_BODY:
        return error(413, "The request body is larger than 1 MB.")
    try:
        return schema.model_validate_json(request.body or b"{}")
    except SchemaError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return error(400, f"Invalid request: {problems}")
