"""OpenAI-compatible embeddings: ``POST /v1/embeddings`` with the catalog's embedding models.

``model`` is the slug of a catalog model whose task is ``embedding`` (the workspace's own, or a
shared one such as the bundled ``all-minilm-l6-v2``). Keys have no scope for models: a key with
knowledge access (read or write) may embed, with the models its creator may use
(``catalog.access.key_may_embed``). The texts are embedded on a worker
(``catalog.services.embeddings``); the request waits for it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from pydantic import BaseModel, ConfigDict, Field, field_validator

from catalog.access import access_api_embedding_model
from catalog.models import Task
from catalog.services import embeddings as service
from studio import openapi
from studio.json_api import error, forbidden, parse_body
from workspaces.authentication import authenticate_sync

Text = Annotated[str, Field(min_length=1, max_length=service.MAX_INPUT_CHARS)]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(
        min_length=1, max_length=100, description="The slug of a catalog embedding model."
    )
    input: Text | Annotated[list[Text], Field(min_length=1, max_length=service.MAX_INPUTS)] = Field(
        description=f"A text, or up to {service.MAX_INPUTS} texts; each non-empty, at most "
        f"{service.MAX_INPUT_TOKENS} tokens and {service.MAX_INPUT_CHARS:,} characters. "
        "Token ids are not accepted."
    )
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="base64: each vector as little-endian float32 bytes."
    )
    dimensions: int | None = Field(
        default=None, ge=1, description="Accepted only when it is the model's own size."
    )
    user: str | None = Field(default=None, max_length=256)

    @field_validator("input", mode="before")
    @classmethod
    def _plain_texts(cls, value: Any) -> Any:
        """Clear reasons for what clients commonly send wrong, before the union's errors."""
        texts = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            raise ValueError("input must hold at least one text")
        if len(texts) > service.MAX_INPUTS:
            raise ValueError(f"input holds {len(texts)} texts; at most {service.MAX_INPUTS}")
        if any(isinstance(text, int | list) for text in texts):
            raise ValueError("token-id input (lists of integers) is not accepted; send the text")
        for index, text in enumerate(texts):
            if text == "":
                raise ValueError(f"input[{index}] is an empty string")
            if isinstance(text, str) and len(text) > service.MAX_INPUT_CHARS:
                raise ValueError(
                    f"input[{index}] has {len(text):,} characters; at most "
                    f"{service.MAX_INPUT_CHARS:,}"
                )
        return value


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of float32 values.")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


def _too_long(tokens: list[int]) -> str:
    for index, count in enumerate(tokens):
        if count > service.MAX_INPUT_TOKENS:
            return f"input[{index}] has {count} tokens; at most {service.MAX_INPUT_TOKENS}."
    return ""


def _answer(body: EmbeddingRequest, vectors: list[str], tokens: int) -> HttpResponse:
    if body.encoding_format == "base64":
        data = [Embedding(index=i, embedding=v) for i, v in enumerate(vectors)]
    else:
        data = [
            Embedding(index=i, embedding=service.embedding_unpacked(v))
            for i, v in enumerate(vectors)
        ]
    size = len(service.embedding_unpacked(vectors[0])) if vectors else 0
    if body.dimensions is not None and body.dimensions != size:
        return error(400, f"{body.model} makes vectors of {size} dimensions; it cannot change.")
    usage = EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
    answer = EmbeddingList(data=data, model=body.model, usage=usage)
    return JsonResponse(answer.model_dump())


@openapi.operation(
    "POST",
    summary="Embed texts (OpenAI-compatible)",
    tag="OpenAI-compatible",
    description="For the official clients: `client.embeddings.create(model=…, input=…)`. "
    "The key needs knowledge access (read or write), and its creator must be allowed to use "
    "the model. Each call is recorded in the workspace's usage.",
    body=EmbeddingRequest,
    answers=[openapi.Answer(200, "One vector per input, in order.", EmbeddingList)],
    errors=(400, 403, 404, 413, 502, 504),
)
@csrf_exempt
@require_POST
def embeddings(request: HttpRequest) -> HttpResponse:
    api_key = authenticate_sync(request)
    if isinstance(api_key, HttpResponse):
        return api_key
    body = parse_body(request, EmbeddingRequest)
    if isinstance(body, HttpResponse):
        return body
    try:
        model = access_api_embedding_model(api_key, body.model)
    except Http404:
        return error(404, f"The model {body.model!r} does not exist.", code="model_not_found")
    except PermissionDenied as exc:
        return forbidden(exc)
    if model.task != Task.EMBEDDING:
        message = f"{body.model} is a {model.task} model; /v1/embeddings needs an embedding model."
        return error(400, message, code="model_not_embedding")
    texts = body.input if isinstance(body.input, list) else [body.input]
    tokens = service.embedding_tokens(texts)
    if message := _too_long(tokens):
        return error(400, message, code="input_too_long")
    job_id = service.embedding_start(
        model=model, texts=texts, api_key=api_key, input_tokens=sum(tokens)
    )
    try:
        vectors = service.embedding_wait(job_id)
    except service.EmbeddingTimeout as exc:
        return error(504, str(exc), "timeout_error", "embedding_timeout")
    except service.EmbeddingFailed as exc:
        return error(502, str(exc), "server_error", "embedding_failed")
    return _answer(body, vectors, sum(tokens))
