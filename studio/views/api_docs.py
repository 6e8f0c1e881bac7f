"""The public API's OpenAPI document (``/api/v1/schema/``) and its interactive reference
(``/api/v1/docs/``, Swagger UI from ``static/vendor/swagger-ui/``).

Both are public, as OpenAI's and Dify's are: they describe the endpoints, never a workspace's
data (no flow, model or key is named in them), and trying an endpoint from the page still
needs an API key.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from studio import openapi


@openapi.operation(
    "GET",
    summary="This OpenAPI document",
    tag="Documentation",
    public=True,
    answers=[openapi.Answer(200, "The OpenAPI 3.1 document of the API.", media="application/json")],
)
@require_GET
def schema(request: HttpRequest) -> HttpResponse:
    return JsonResponse(openapi.document())


@openapi.operation(
    "GET",
    summary="The interactive API reference",
    tag="Documentation",
    public=True,
    answers=[openapi.Answer(200, "An HTML page that reads this document.", media="text/html")],
)
@require_GET
def docs(request: HttpRequest) -> HttpResponse:
    return render(request, "studio/api_docs.html")
