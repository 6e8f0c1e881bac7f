"""The openai_compatible engine: streams from any server that speaks OpenAI's chat completions API
(a ``vllm serve`` fleet, OpenAI itself, and the many others that copy its protocol); embeds
through its embeddings API (``POST <base_url>/embeddings``) and reranks through the Jina/Cohere
rerank API that vLLM also serves (``POST <base_url>/rerank``).

Every request goes through ``studio.egress`` (the SSRF-safe client): a catalog entry's base URL is
user input, checked against the operator's allow list for model endpoints (``egress.MODELS``).
The engine holds one ``httpx.AsyncClient`` for the event loop it streams on (the worker's
resident loop, ``workers/resident.py``), so connections are reused across requests.

Failures:
- connection errors, timeouts, 429 and 5xx are retried with a short exponential backoff, but only
  while nothing has been yielded: a caller that has already shown tokens cannot take them back
  (embeddings and rerank scores come whole, so their requests are always retried);
- any other 4xx raises ``EngineError`` at once with the server's message (truncated);
- an answer past the size limits below (a hostile or broken server) raises ``EngineError`` at
  once, having read no more than the limit;
- the API key never appears in a message, a log line or the engine's ``repr``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings as django_settings
from pydantic import BaseModel, ConfigDict, Field, field_validator

from catalog.engines import register
from catalog.engines.base import Chunk, Engine, EngineError, EngineSpec, GenerationRequest
from studio import egress

log = logging.getLogger(__name__)

# First pause before a retry; each further retry waits twice as long.
BACKOFF_S = 0.2
# A server's Retry-After is honoured up to this many seconds; longer waits are the router's to
# avoid (it moves on to the route's next model).
MAX_RETRY_AFTER_S = 5.0
# How much of an error body is read and shown: enough for a message, never a whole page.
ERROR_BODY_LIMIT = 16_384
ERROR_MESSAGE_CHARS = 300
# What OpenAI's own SDK retries: request timeout, conflict (a lock), rate limit, server errors.
RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
# Size limits on what a server sends, so that one cannot fill a worker's memory. An embeddings
# answer of 64 vectors of 16,384 dimensions is about 25 MB of JSON.
JSON_BODY_LIMIT = 64 * 1024 * 1024
# One server-sent event (and so one line of it): a delta is a few hundred bytes, and even a
# server that sends a whole long answer in one event stays far below.
SSE_EVENT_LIMIT = 4 * 1024 * 1024
# A whole streamed answer: 128k tokens at ~250 bytes of JSON each is about 32 MB.
STREAM_LIMIT = 64 * 1024 * 1024
# Texts per embeddings or rerank request: well under every provider's per-request cap (OpenAI
# takes 2048 inputs), small enough that one answer stays a few megabytes.
BATCH = 64


class OpenAICompatibleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The API root, e.g. https://api.openai.com/v1 or http://vllm.internal:8000/v1; requests go to
    # <base_url>/chat/completions, /embeddings or /rerank by the entry's task.
    base_url: str = Field(min_length=1, max_length=500)
    # None: the studio's default (STUDIO_REMOTE_TIMEOUT_S, STUDIO_REMOTE_RETRIES), read when the
    # engine is built, so that an operator's change reaches every entry that kept the default.
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    retries: int | None = Field(default=None, ge=0, le=10)
    # OpenAI's OpenAI-Organization header, for keys that belong to several organisations.
    organization: str = Field(default="", max_length=200)
    # The length of the vectors the embeddings endpoint returns, for ``dimensions()`` before the
    # first request; every answer is checked against it. Not sent to the server.
    dimensions: int | None = Field(default=None, ge=1, le=65_536)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            # A password in the URL would end up in logs and on pages: keys belong in credentials.
            raise ValueError("base_url must not hold a user or password; use a credential")
        if parts.fragment:
            raise ValueError("base_url must not have a #fragment")
        return value


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "••••") if secret else text


def _error_message(body: bytes) -> str:
    """The human part of an error body: OpenAI's ``error.message``, vLLM's ``message``, FastAPI's
    ``detail``, or the text itself."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "detail", "error"):
            if data.get(key):
                value = data[key]
                return value if isinstance(value, str) else json.dumps(value)
    return text


def _estimate_tokens(messages: list[dict[str, Any]]) -> int:
    # About four characters per token in English text: only used when a server reports no usage,
    # so that cost and usage pages show an order of magnitude rather than zero.
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return math.ceil(chars / 4)


class _Retry(Exception):
    """A failure before any output that another attempt may cure."""

    def __init__(self, reason: str, wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait_s = wait_s


class _ToolCalls:
    """Streamed tool-call deltas, put together the way OpenAI's own SDK does: fields arrive in
    pieces keyed by ``index``; strings are concatenated, ``id`` and ``type`` are kept."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, deltas: list[dict[str, Any]]) -> None:
        for delta in deltas:
            index = int(delta.get("index", len(self._calls)))
            call = self._calls.setdefault(
                index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            if delta.get("id"):
                call["id"] = delta["id"]
            if delta.get("type"):
                call["type"] = delta["type"]
            function = delta.get("function") or {}
            for key in ("name", "arguments"):
                if function.get(key):
                    call["function"][key] += function[key]

    def result(self) -> list[dict[str, Any]] | None:
        return [self._calls[i] for i in sorted(self._calls)] or None


@register
class OpenAICompatibleEngine(Engine):
    kind = "openai_compatible"
    remote = True
    tasks = frozenset({"chat", "completion", "embedding", "rerank"})
    queue = "inference"
    portable = True
    # A remote vLLM serves each LoRA adapter it was started with (--lora-modules name=path) as a
    # model of that name; the engine asks for it by name and loads nothing itself.
    supports_adapters = True
    Settings = OpenAICompatibleSettings

    def __init__(self, spec: EngineSpec) -> None:
        super().__init__(spec)
        self.timeout_s = self.settings.timeout_s or django_settings.STUDIO_REMOTE_TIMEOUT_S
        retries = self.settings.retries
        self.retries = django_settings.STUDIO_REMOTE_RETRIES if retries is None else retries
        self.url = f"{self.settings.base_url}/chat/completions"
        # Learnt from the first embeddings answer when the settings do not say.
        self._dimensions: int | None = self.settings.dimensions
        # The host alone names the server in messages: a base URL may carry a query string.
        self.server = urlsplit(self.settings.base_url).netloc
        # One client per event loop: an httpx client's pooled connections belong to the loop that
        # opened them. In a worker that is one client, on the resident loop.
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    def __repr__(self) -> str:
        return f"<OpenAICompatibleEngine {self.spec.weights!r} at {self.server}>"

    # --- the client ---------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        """The engine's client for the running loop, made on first use."""
        loop = asyncio.get_running_loop()
        for other in list(self._clients):  # a copy: close() may run in another thread
            if other.is_closed():
                # A closed loop's connections can no longer be used or closed: let them go.
                self._clients.pop(other, None)
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = egress.async_client(
                purpose=egress.MODELS,
                timeout=httpx.Timeout(self.timeout_s),
                headers=self._headers(),
                follow_redirects=False,
            )
            self._clients[loop] = client
        return client

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.spec.secret:
            headers["Authorization"] = f"Bearer {self.spec.secret}"
        if self.settings.organization:
            headers["OpenAI-Organization"] = self.settings.organization
        return headers

    def close(self) -> None:
        """Close the clients, each on its own loop; callable from any thread (the resident loader
        calls it from a worker thread when a catalog entry changes). Does not wait."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        clients, self._clients = self._clients, {}
        for loop, client in clients.items():
            if loop is running:
                loop.create_task(client.aclose())
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(client.aclose(), loop)
            # A stopped loop cannot run the close; its sockets go with the garbage collector.

    # --- the request --------------------------------------------------------------------------

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            # vLLM serves each LoRA adapter under its own model name.
            "model": request.adapter.name if request.adapter else self.spec.weights,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.json_schema is not None:
            # No "strict": OpenAI's strict mode refuses schemas that do not close every object
            # (additionalProperties: false), and vLLM enforces the schema either way.
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.json_schema},
            }
        if request.tools:
            body["tools"] = request.tools
        return body

    def _fail(self, what: str) -> EngineError:
        return EngineError(_redact(f"{self.server}: {what}", self.spec.secret))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Stream the answer. Retries (connection errors, timeouts, 429, 5xx) happen only before
        the first chunk is yielded; after that a failure raises ``EngineError``."""
        client = self._client()
        body = self._body(request)
        attempt = 0
        while True:
            try:
                # aclosing: a caller that stops reading closes the response now, not at GC.
                async with aclosing(self._attempt(client, body, request)) as chunks:
                    async for chunk in chunks:
                        yield chunk
                return
            except _Retry as retry:
                wait = self._next_wait(retry, attempt)
                attempt += 1
                await asyncio.sleep(wait)

    def _next_wait(self, retry: _Retry, attempt: int) -> float:
        """How long to wait before attempt ``attempt + 1``; raises EngineError when the retries
        are spent."""
        if attempt >= self.retries:
            tries = f"{attempt + 1} attempts" if attempt else "1 attempt"
            raise self._fail(f"{retry.reason} (after {tries})") from None
        wait = retry.wait_s if retry.wait_s is not None else BACKOFF_S * 2**attempt
        log.warning("%s: %s; retrying in %.1f s", self.server, retry.reason, wait)
        return wait

    async def _attempt(
        self, client: httpx.AsyncClient, body: dict[str, Any], request: GenerationRequest
    ) -> AsyncIterator[Chunk]:
        yielded = False
        try:
            async with client.stream("POST", self.url, json=body) as response:
                if response.status_code != 200:
                    await self._refuse(response)
                async for chunk in self._read(response, request):
                    yielded = True
                    yield chunk
        except egress.EgressRefused as exc:
            raise self._fail(str(exc)) from None
        except httpx.TimeoutException as exc:
            if yielded:
                raise self._fail(
                    f"no data for {self.timeout_s:g} s, the answer was cut off"
                ) from None
            raise _Retry(f"timed out after {self.timeout_s:g} s ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            if yielded:
                raise self._fail(f"the connection broke off mid-answer: {exc}") from None
            reason = _redact(f"could not be reached: {_describe(exc)}", self.spec.secret)
            raise _Retry(reason) from None
        except httpx.HTTPError as exc:  # a body that cannot be decoded, and the like
            raise self._fail(_describe(exc)) from None

    # --- embeddings and rerank ---------------------------------------------------------------

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """The endpoint's vectors, L2-normalised here (not every server normalises), in the
        order of ``texts``; one request per ``BATCH`` texts, one after another. Raises
        EngineError for a refusal, a malformed answer or vectors of varying length."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = texts[start : start + BATCH]
            answer = await self._post_json(
                "embeddings", {"model": self.spec.weights, "input": batch}
            )
            vectors += self._vectors(answer, len(batch))
        return vectors

    async def rerank(self, query: str, texts: list[str]) -> list[float]:
        """The endpoint's ``relevance_score`` of each text for ``query``, in the order of
        ``texts``; one request per ``BATCH`` texts (a cross-encoder scores each pair on its own,
        so scores from different requests compare). Raises EngineError as ``embed`` does."""
        scores: list[float] = []
        for start in range(0, len(texts), BATCH):
            batch = texts[start : start + BATCH]
            answer = await self._post_json(
                "rerank", {"model": self.spec.weights, "query": query, "documents": batch}
            )
            scores += self._scores(answer, len(batch))
        return scores

    def dimensions(self) -> int:
        """The vectors' length: from the settings, else from the first embeddings answer."""
        if self._dimensions is None:
            raise EngineError(
                f"{self.server}: the embedding size is not known before the first embedding; "
                "set dimensions in the engine settings"
            )
        return self._dimensions

    async def _post_json(self, path: str, body: dict[str, Any]) -> Any:
        """POST ``body`` to ``<base_url>/<path>``; the decoded JSON answer. Failures that another
        attempt may cure are retried as in ``stream``; the rest raise EngineError."""
        client = self._client()
        url = f"{self.settings.base_url}/{path}"
        attempt = 0
        while True:
            try:
                return await self._post_attempt(client, url, body)
            except _Retry as retry:
                wait = self._next_wait(retry, attempt)
                attempt += 1
                await asyncio.sleep(wait)

    async def _post_attempt(self, client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Any:
        try:
            # Streamed, so that an error body is read only as far as ERROR_BODY_LIMIT.
            async with client.stream(
                "POST", url, json=body, headers={"Accept": "application/json"}
            ) as response:
                if response.status_code != 200:
                    await self._refuse(response)
                raw = await egress.aread_limited(response, JSON_BODY_LIMIT)
        except egress.EgressRefused as exc:
            raise self._fail(str(exc)) from None
        except httpx.TimeoutException as exc:
            raise _Retry(f"timed out after {self.timeout_s:g} s ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            reason = _redact(f"could not be reached: {_describe(exc)}", self.spec.secret)
            raise _Retry(reason) from None
        except httpx.HTTPError as exc:
            raise self._fail(_describe(exc)) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise self._fail(f"sent something that is not JSON: {raw[:100]!r}") from None

    def _vectors(self, answer: Any, expected: int) -> list[list[float]]:
        """OpenAI's ``{"data": [{"index", "embedding"}, …]}`` as unit vectors in input order."""
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or len(data) != expected:
            count = len(data) if isinstance(data, list) else "no"
            raise self._fail(f"returned {count} embeddings for {expected} texts")
        vectors: list[list[float] | None] = [None] * expected
        for position, item in enumerate(data):
            index = item.get("index", position) if isinstance(item, dict) else None
            values = item.get("embedding") if isinstance(item, dict) else None
            if not (_is_index(index, expected) and vectors[index] is None):
                raise self._fail(f"returned an embedding with a bad index: {index!r:.40}")
            vectors[index] = self._unit(values)
        return vectors  # type: ignore[return-value] - every index was filled once

    def _unit(self, values: Any) -> list[float]:
        # A base64 string fails here too: the request asks for the default encoding, floats.
        if not (isinstance(values, list) and values and all(_is_number(x) for x in values)):
            raise self._fail("returned an embedding that is not a list of numbers")
        if self._dimensions is None:
            self._dimensions = len(values)
        elif len(values) != self._dimensions:
            raise self._fail(
                f"returned vectors of {len(values)} dimensions; expected {self._dimensions}"
            )
        norm = math.sqrt(math.fsum(float(x) * float(x) for x in values))
        if not math.isfinite(norm) or norm == 0:
            raise self._fail("returned an embedding of zero or infinite length")
        return [float(x) / norm for x in values]

    def _scores(self, answer: Any, expected: int) -> list[float]:
        """The rerank answer's ``{"results": [{"index", "relevance_score"}, …]}`` (in any order,
        best first as servers send it) as scores in input order."""
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise self._fail("returned no rerank results")
        scores: list[float | None] = [None] * expected
        for result in results:
            index = result.get("index") if isinstance(result, dict) else None
            score = result.get("relevance_score") if isinstance(result, dict) else None
            if not (_is_index(index, expected) and scores[index] is None):
                raise self._fail(f"returned a rerank result with a bad index: {index!r:.40}")
            if not (_is_number(score) and math.isfinite(score)):
                raise self._fail(f"returned a relevance score that is not a number: {score!r:.40}")
            scores[index] = float(score)
        if None in scores:
            raise self._fail(
                f"scored {expected - scores.count(None)} of {expected} documents; "
                "the endpoint may cap results (top_n)"
            )
        return scores  # type: ignore[return-value] - no None left

    async def _refuse(self, response: httpx.Response) -> None:
        """Raise for a non-200 answer: ``_Retry`` when another attempt may help."""
        raw = bytearray()
        async for piece in response.aiter_bytes():
            raw += piece
            if len(raw) > ERROR_BODY_LIMIT:
                break
        message = _short(_redact(_error_message(bytes(raw[:ERROR_BODY_LIMIT])), self.spec.secret))
        status = f"answered {response.status_code}" + (f": {message}" if message else "")
        if response.status_code in RETRYABLE_STATUS:
            raise _Retry(status, _retry_after(response))
        raise self._fail(status)

    async def _read(
        self, response: httpx.Response, request: GenerationRequest
    ) -> AsyncIterator[Chunk]:
        """The SSE stream as chunks: text as it comes, then one last chunk with the counts."""
        tools = _ToolCalls()
        usage: dict[str, Any] = {}
        finish: str | None = None
        deltas = 0
        done = False
        async for data in _sse_data(response.aiter_bytes()):
            if data == "[DONE]" or done:
                # Read on to the end of the body rather than break: a response read to its end
                # returns its connection to the pool, one left early is closed.
                done = True
                continue
            try:
                event = json.loads(data)
            except ValueError:
                raise self._fail(f"sent something that is not JSON: {data[:100]!r}") from None
            if not isinstance(event, dict):
                continue
            if event.get("error"):
                # vLLM reports a failure after the stream started as an error event.
                # Redacted before it is cut short: a cut through the key would leave part of it.
                message = _short(_redact(_error_message(data.encode()), self.spec.secret))
                raise self._fail(f"failed mid-answer: {message}")
            if isinstance(event.get("usage"), dict):
                usage = event["usage"]
            for choice in event.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                if delta.get("tool_calls"):
                    tools.add(delta["tool_calls"])
                if delta.get("content"):
                    deltas += 1
                    yield Chunk(text=delta["content"])
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        if not done and finish is None:
            raise self._fail("the stream ended before the answer was complete")
        yield Chunk(
            input_tokens=_int(usage.get("prompt_tokens"), _estimate_tokens(request.messages)),
            output_tokens=_int(usage.get("completion_tokens"), deltas),
            finish_reason=finish or "stop",
            tool_calls=tools.result(),
        )


def _short(message: str) -> str:
    return message[:ERROR_MESSAGE_CHARS] + "…" if len(message) > ERROR_MESSAGE_CHARS else message


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_index(value: Any, length: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < length


def _int(value: Any, fallback: int) -> int:
    return value if isinstance(value, int) and value >= 0 else fallback


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


async def _sse_data(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (several ``data:`` lines joined by newlines).
    Raises EgressRefused for an event over SSE_EVENT_LIMIT or a stream over STREAM_LIMIT."""
    lines: list[str] = []
    size = 0
    bounded = egress.aiter_lines_limited(
        chunks, line_limit=SSE_EVENT_LIMIT, total_limit=STREAM_LIMIT
    )
    async for line in bounded:
        if not line:
            if lines:
                yield "\n".join(lines)
                lines, size = [], 0
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
            size += len(lines[-1]) + 1
            if size > SSE_EVENT_LIMIT:
                raise egress.EgressRefused(
                    f"sent an event longer than {SSE_EVENT_LIMIT:,} characters"
                )
        # Comments (":"), "event:", "id:" and "retry:" lines carry nothing the answer needs.
    if lines:
        yield "\n".join(lines)
