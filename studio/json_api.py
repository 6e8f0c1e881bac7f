"""Pieces every JSON API of the studio shares: errors in one shape (OpenAI's), Bearer API-key
authentication, and request bodies validated by a pydantic schema with a size limit."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from pydantic import BaseModel
from pydantic import ValidationError as SchemaError

from studio import access
from studio.models import ApiKey

MAX_BODY = 1_000_000


def error(status: int, message: str, type_: str = "invalid_request_error", code=None):
    return JsonResponse({"error": {"message": message, "type": type_, "code": code}}, status=status)


def unauthorized() -> JsonResponse:
    response = error(401, "Missing or invalid API key.", "authentication_error", "invalid_api_key")
    response["WWW-Authenticate"] = 'Bearer realm="studio"'
    return response


async def authenticate(request: HttpRequest) -> ApiKey | None:
    return await sync_to_async(access.authenticate_api_key)(request.headers.get("Authorization"))


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
