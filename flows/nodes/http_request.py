"""The HTTP request node: calls a URL and gives back the status, the body and the headers.

Every request goes through ``studio.egress`` (the SSRF-safe client, each redirect hop checked),
so a flow cannot reach the studio's own network unless an operator trusts it. Variables are
filled by where they stand: percent-encoded in the URL and in a form body, as they are in
headers and query values (the client encodes the query), and as JSON in a JSON body (a text
inside a JSON string is escaped; elsewhere a value is written as JSON, so ``{{count}}`` stays a
number and ``{{item}}`` an object).

A 4xx or 5xx answer is not a failure: the flow reads ``status`` and branches. A refused address,
a connection that fails, a timeout or an answer over ``max_response_kb`` fails the node with the
reason.

Secrets: a node's settings are stored in the graph, shown to whoever may view the flow, exported
and audited, so a header that carries a secret (Authorization, Cookie, X-Api-Key…) may not hold
a typed-in value; it is refused at save with a pointer to credentials. The node names a stored
credential instead (``credential``): the worker decrypts it when it sends the request, and only
to a host an admin allowed for it (every redirect hop too), so whoever edits a flow can use the
key but cannot send it to a server of theirs. The graph holds the credential's name, never its
value.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import Field, field_validator, model_validator

from catalog.hosts import host_allowed
from catalog.selectors.credentials import (
    acredential_for_request,
    credential_for_requests,
    credential_host_refused,
    credential_unavailable,
)
from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeContext, NodeOutput, NodeType, PortType
from flows.runtime.templating import VARIABLE, render, variables
from studio import egress

MAX_REDIRECTS = 5
# RFC 9110 token characters: what a header name may hold.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}$")
# Header names that carry secrets. A literal value of one would sit in the graph in plain text,
# so only {{variables}} (with an auth scheme word before them) are accepted there.
_SECRET_HEADER = re.compile(
    r"auth|cookie|key|token|secret|passw|session|signature|credential", re.IGNORECASE
)
_SCHEME_WORDS = frozenset({"", "bearer", "basic", "token"})
MASK = "••••"
_CONTENT_TYPES = {
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
    "form": "application/x-www-form-urlencoded",
}


class HttpRequestConfig(NodeConfig):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field(default="GET", title="Method")
    url: str = Field(
        default="https://api.example.com/items/{{item_id}}",
        min_length=1,
        max_length=4_000,
        title="URL",
        description="http:// or https://; {{variables}} in it are percent-encoded.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=50,
        title="Headers",
        description="Header name → value; values may hold {{variables}}.",
    )
    query: dict[str, str] = Field(
        default_factory=dict,
        max_length=50,
        title="Query parameters",
        description="Name → value, added to the URL's query; values may hold {{variables}}.",
    )
    body: str = Field(
        default="",
        max_length=1_000_000,
        title="Body",
        description="What is sent, of the body type; {{variables}} are filled in.",
    )
    body_type: Literal["none", "json", "text", "form"] = Field(
        default="none",
        title="Body type",
        description="json (sent as JSON), text, form (name=value&…), or none.",
    )
    timeout_s: int = Field(
        default=10,
        ge=1,
        le=60,
        title="Timeout (seconds)",
        description="The longest the whole request may take.",
    )
    max_response_kb: int = Field(
        default=1024,
        ge=1,
        le=10_240,
        title="Largest response (kB)",
        description="A longer response fails the node.",
    )
    credential: str = Field(
        default="",
        max_length=200,
        title="Credential",
        description="A stored credential to send (an admin sets the hosts it may go to); "
        "never type a key into a header.",
    )
    credential_as: Literal["bearer", "header", "basic"] = Field(
        default="bearer",
        title="Send the credential as",
        description="bearer: Authorization: Bearer <key>; header: the key as the value of the "
        "header below; basic: HTTP basic auth, the key being user:password.",
    )
    credential_header: str = Field(
        default="",
        max_length=100,
        title="Credential header",
        description="The header that carries the key when it is sent as a header, e.g. X-API-Key.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        url = url.strip()
        if not re.match(r"^https?://", url, re.IGNORECASE):
            raise ValueError("the URL must start with http:// or https://")
        if not urlsplit(VARIABLE.sub("x", url)).hostname:
            raise ValueError("the URL has no host")
        return url

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a header name")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r}: a value is one line")
        return headers

    @model_validator(mode="after")
    def _credential(self) -> HttpRequestConfig:
        if not self.credential:
            return self
        if "{{" in urlsplit(self.url).netloc:
            # The host is checked against the credential's allowed hosts when the flow is saved:
            # one filled in at run time could be anyone's.
            raise ValueError(
                "url: a request that sends a credential needs a host without variables"
            )
        if self.credential_as == "header" and not _HEADER_NAME.match(self.credential_header):
            raise ValueError("credential_header: name the header that carries the credential")
        sent = self.credential_header if self.credential_as == "header" else "Authorization"
        if any(name.lower() == sent.lower() for name in self.headers):
            raise ValueError(f"headers: {sent} is set by the credential; remove it from headers")
        return self

    @model_validator(mode="after")
    def _body(self) -> HttpRequestConfig:
        if self.body_type == "none" and self.body.strip():
            raise ValueError("body: there is a body but the body type is none")
        if self.body_type == "json" and self.body.strip():
            try:
                json.loads(json_body(self.body, {}))
            except ValueError as exc:
                raise ValueError(f"body: not JSON ({exc})") from None
        return self

    def templates(self) -> list[str]:
        """Every text whose variables are the node's inputs."""
        return [self.url, *self.headers.values(), *self.query.values(), self.body]


def secret_headers(headers: dict[str, Any]) -> list[str]:
    """The headers of ``headers`` whose name says secret and whose value holds typed-in text
    (anything but {{variables}}, with an auth scheme word before them)."""
    return [
        name
        for name, value in headers.items()
        if _SECRET_HEADER.search(str(name))
        and (
            not isinstance(value, str)
            or VARIABLE.sub("", value).strip().lower() not in _SCHEME_WORDS
        )
    ]


def config_redacted(config: Any) -> Any:
    """``config`` (as stored, possibly invalid) with the typed-in values of secret headers
    masked: what a graph saved before they were refused shows and exports."""
    if not isinstance(config, dict) or not isinstance(config.get("headers"), dict):
        return config
    hidden = secret_headers(config["headers"])
    if not hidden:
        return config
    headers = {k: MASK if k in hidden else v for k, v in config["headers"].items()}
    return {**config, "headers": headers}


def _text(placeholder: str, values: dict[str, Any]) -> str:
    """A variable's value as the templates write it (``flows.runtime.templating``'s conversion)."""
    return render(placeholder, values)


def url_encoded(template: str, values: dict[str, Any]) -> str:
    """``template`` with each variable percent-encoded: a value cannot add a path segment, a
    query parameter or another host."""
    return VARIABLE.sub(lambda m: quote(_text(m.group(0), values), safe=""), template)


# A JSON string literal, or a placeholder: what ``json_body`` steps through.
_JSON_PIECE = re.compile(r'"(?:[^"\\]|\\.)*"|' + VARIABLE.pattern, re.DOTALL)


def json_body(template: str, values: dict[str, Any]) -> str:
    """``template`` (JSON with placeholders) filled so that it stays JSON: inside a string a
    value's text is escaped; elsewhere the value is written as JSON (a missing one as null).
    With no values (the save check), every placeholder stands in as null or an empty text."""

    def in_string(literal: str) -> str:
        return VARIABLE.sub(
            lambda m: json.dumps(_text(m.group(0), values), ensure_ascii=False)[1:-1], literal
        )

    def piece(match: re.Match) -> str:
        if match.group(0).startswith('"'):
            return in_string(match.group(0))
        return json.dumps(values.get(match.group(1)), ensure_ascii=False)

    return _JSON_PIECE.sub(piece, template)


def _request_parts(config: HttpRequestConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    parts: dict[str, Any] = {
        "method": config.method,
        "url": url_encoded(config.url, inputs),
        "headers": {name: render(value, inputs) for name, value in config.headers.items()},
        "params": {name: render(value, inputs) for name, value in config.query.items()},
    }
    if config.body_type == "none":
        return parts
    body = {
        "json": lambda: json_body(config.body, inputs),
        "text": lambda: render(config.body, inputs),
        "form": lambda: url_encoded(config.body, inputs),
    }[config.body_type]()
    if not any(name.lower() == "content-type" for name in parts["headers"]):
        parts["headers"]["Content-Type"] = _CONTENT_TYPES[config.body_type]
    parts["content"] = body.encode()
    return parts


async def _read(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise ValueError(f"the response is larger than {limit // 1024:,} kB")
    return bytes(body)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def _host(url: str) -> str:
    return urlsplit(url).netloc or url[:100]


def _credential_header(config: HttpRequestConfig, secret: str) -> dict[str, str]:
    if config.credential_as == "header":
        return {config.credential_header: secret}
    if config.credential_as == "basic":
        return {"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()}
    return {"Authorization": f"Bearer {secret}"}


def _url_host(url: str) -> str:
    # Read as the client that sends the request reads it: no parser differential to exploit.
    try:
        return httpx.URL(url).host
    except httpx.InvalidURL:
        return ""


async def _with_credential(
    ctx: NodeContext, config: HttpRequestConfig, parts: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, list]]:
    """``parts`` with the credential's header, and the event hooks that refuse any request
    (each redirect hop) to a host the credential may not go to. PermissionError when it may
    not be sent to the URL's host."""
    host = _url_host(parts["url"])
    secret, allowed = await acredential_for_request(ctx.workspace_id, config.credential, host)

    async def only_allowed_hosts(request: httpx.Request) -> None:
        # httpx drops Authorization on a redirect to another origin, but not a custom header.
        if not host_allowed(request.url.host, allowed):
            raise PermissionError(
                credential_host_refused(config.credential, request.url.host, allowed)
            )

    headers = {**parts["headers"], **_credential_header(config, secret)}
    return {**parts, "headers": headers}, {"request": [only_allowed_hosts]}


def _credential_problems(config: HttpRequestConfig, workspace_id: int) -> list[str]:
    credential = credential_for_requests(workspace_id, config.credential)
    if credential is None:
        return [credential_unavailable(config.credential)]
    host = _url_host(config.url)
    if not host_allowed(host, credential.allowed_hosts):
        return [credential_host_refused(config.credential, host, credential.allowed_hosts)]
    return []


@register
class HttpRequestNode(NodeType):
    type = "http_request"
    label = "HTTP request"
    group = "Tools"
    description = "Calls a web API and gives back the status, the body and the headers."
    Config = HttpRequestConfig

    def input_ports(self, config: HttpRequestConfig) -> dict[str, PortType]:
        return {name: "any" for name in variables("\n".join(config.templates()))}

    def output_ports(self, config: HttpRequestConfig) -> dict[str, PortType]:
        return {"status": "number", "body": "text", "json": "json", "headers": "json"}

    def check(self, config: HttpRequestConfig, workspace: Any, user: Any = None) -> list[str]:
        errors = [
            f"header {name!r} holds a typed-in value, which a flow would store, show and export "
            "in plain text: store the key as a credential (Credentials page) and choose it "
            "under Credential, or pass it in as a {{variable}}"
            for name in secret_headers(config.headers)
        ]
        if config.credential:
            errors += _credential_problems(config, workspace.id)
        return errors

    def redacted(self, config: Any) -> Any:
        return config_redacted(config)

    def queue(self, config: HttpRequestConfig, workspace_id: int) -> str | None:
        return "flows"

    async def arun(
        self, ctx: NodeContext, config: HttpRequestConfig, inputs: dict[str, Any]
    ) -> NodeOutput:
        parts = _request_parts(config, inputs)
        host = _host(parts["url"])
        hooks: dict[str, list] = {}
        if config.credential:
            parts, hooks = await _with_credential(ctx, config, parts)
        limit = config.max_response_kb * 1024
        started = time.monotonic()
        try:
            async with (
                asyncio.timeout(config.timeout_s),
                egress.async_client(
                    timeout=httpx.Timeout(config.timeout_s),
                    follow_redirects=True,
                    max_redirects=MAX_REDIRECTS,
                    event_hooks=hooks,
                ) as client,
                client.stream(**parts) as response,
            ):
                raw = await _read(response, limit)
        except (TimeoutError, httpx.TimeoutException):
            raise TimeoutError(f"no answer from {host} within {config.timeout_s} s") from None
        except egress.EgressRefused as exc:
            raise PermissionError(f"the request was refused: {exc}") from None
        except httpx.TooManyRedirects:
            raise ConnectionError(f"{host} redirected more than {MAX_REDIRECTS} times") from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ConnectionError(f"the request to {host} failed: {reason}") from None
        body = raw.decode(response.encoding or "utf-8", errors="replace")
        headers: dict[str, str] = {}
        for name, value in response.headers.multi_items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return NodeOutput(
            outputs={
                "status": response.status_code,
                "body": body,
                "json": _json_or_none(body),
                "headers": headers,
            },
            details={
                "request": f"{config.method} {parts['url']}",
                "status": response.status_code,
                "bytes": len(raw),
                "ms": round((time.monotonic() - started) * 1000, 2),
            },
        )
