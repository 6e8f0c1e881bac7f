"""Request body limits, enforced where the bytes arrive: before any view and any authentication.

A body past its path's limit is answered 413, naming the limit, and is never stored: the
daphne request below counts bytes as they come off the socket, and the ASGI middleware does the
same for servers that stream bodies to the application. The views' own limits (a knowledge
file's size, a flow import's) stay where they are; these only bound what reaches them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from daphne import http_protocol
from django.conf import settings
from django.urls import Resolver404, resolve

MB = 1024 * 1024
# Room for the boundaries, part headers and small fields of a multipart body around its files.
MULTIPART_SLACK = MB


def body_limit(path: str) -> int:
    """The most bytes a request body to ``path`` may have: the knowledge upload routes take
    their files' worth, every other route ``STUDIO_MAX_BODY_MB``."""
    try:
        route = resolve(path).view_name
    except Resolver404:
        route = None
    file_bytes = settings.STUDIO_KNOWLEDGE_MAX_FILE_MB * MB
    if route == "knowledge:kb-upload":
        return file_bytes * settings.DATA_UPLOAD_MAX_NUMBER_FILES + MULTIPART_SLACK
    if route == "knowledge:api-kb-documents":
        return file_bytes + MULTIPART_SLACK
    return settings.STUDIO_MAX_BODY_MB * MB


class PathLimit:
    """The body limit of one request's path, looked up only once a body passes the default
    (every route's limit is at least that): most requests never resolve their route here."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.limit = settings.STUDIO_MAX_BODY_MB * MB
        self.resolved = False

    def exceeded_by(self, size: int) -> bool:
        if size > self.limit and not self.resolved:
            self.limit, self.resolved = body_limit(self.path), True
        return size > self.limit


def refusal(limit: int) -> bytes:
    return f"Request body too large: the limit here is {limit / MB:g} MB.\n".encode()


# --- daphne ---------------------------------------------------------------------------------


class BoundedRequest(http_protocol.WebRequest):
    """daphne's request, refusing a body past its path's limit while it arrives.

    daphne has no limit of its own and, through twisted, spools the whole body (to a temporary
    file past 100 KB) before it calls the application, so an endless chunked body would fill
    the disk before any ASGI code ran. Here a declared length past the limit is refused at
    once, a chunked body as soon as the count passes it; the client gets a 413 and the
    connection is closed, so nothing more is read. A refused request never reaches Django.
    """

    received = 0
    refused = False

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - twisted's name
        super().gotLength(length)
        path = self.channel._path.split(b"?", 1)[0].decode("latin-1")
        self.path_limit = PathLimit(unquote(path))
        if length is not None and self.path_limit.exceeded_by(length):
            self._refuse()

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - twisted's name
        if self.refused:
            return
        self.received += len(data)
        if self.path_limit.exceeded_by(self.received):
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        if not self.refused:
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self.refused = True
        self.content.close()
        # twisted would answer "100 Continue" after this 413 otherwise.
        self.requestHeaders.removeHeader(b"Expect")
        body = refusal(self.path_limit.limit)
        head = (
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        )
        # As twisted answers a malformed request: written straight out, then the connection
        # closed, which also stops reading from it.
        self.channel.transport.write(head + body)
        self.channel.loseConnection()


def bound_daphne() -> None:
    """Make daphne's HTTP factory build bounded requests (it names its request class as a module
    global when it builds each connection's protocol, and offers no setting for it)."""
    http_protocol.WebRequest = BoundedRequest


# --- any ASGI server ------------------------------------------------------------------------


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """ASGI middleware with the same limits, for servers that hand the body to the application
    as it arrives (uvicorn, hypercorn): a declared length past the limit is answered before the
    application starts, a longer stream as soon as its count passes the limit."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path_limit = PathLimit(scope["path"])
        if path_limit.exceeded_by(_declared_length(scope)):
            return await _send_refusal(send, path_limit.limit)
        received = 0
        started = False

        async def counted_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if path_limit.exceeded_by(received):
                    raise BodyTooLarge
            return message

        async def watched_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await _send_refusal(send, path_limit.limit)


def _declared_length(scope: dict) -> int:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _send_refusal(send: Any, limit: int) -> None:
    body = refusal(limit)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
