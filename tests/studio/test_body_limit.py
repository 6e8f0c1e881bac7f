"""Request bodies are bounded where they arrive, before any view or authentication.

Through the real daphne: an endless chunked body to an API route, sent with no key, is answered
413 naming the limit, and the server stops reading (the client cannot push much more than the
limit, whatever it tries); a declared length past the limit is refused before any body is
sent; a knowledge upload larger than the default limit still works. Through the ASGI
application itself, as a streaming server (uvicorn) would call it: the same refusal.
"""

from __future__ import annotations

import select
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from asgiref.testing import ApplicationCommunicator
from django.conf import settings

from knowledge.models import Document
from knowledge.services.bases import BaseSettings, kb_create

MB = 1024 * 1024
# What loopback socket buffers (the client's send buffer, the server's receive buffer) can hold
# beyond what the server read: the server stopped reading if the client got no further.
SOCKET_BUFFERS = 16 * MB


def _connect(base_url: str) -> socket.socket:
    address = urlsplit(base_url)
    return socket.create_connection((address.hostname, address.port), timeout=10)


def _send_endless_chunked(base_url: str, path: str, give_up_after: int) -> tuple[int, bytes]:
    """Send a chunked body until the server answers or shuts the door (or ``give_up_after``
    bytes went out): the bytes sent and what came back."""
    sock = _connect(base_url)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    chunk = b"[" * 65536
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent, answer = 0, b""
    try:
        while sent < give_up_after:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
            elif writable:
                sock.sendall(frame)
                sent += len(frame)
            else:
                break  # neither: the server neither reads nor answers
    except OSError:
        pass  # reset or broken pipe: the server closed the connection
    try:  # an answer that came just before a reset is still in the socket
        sock.setblocking(False)
        answer += sock.recv(65536)
    except OSError:
        pass
    sock.close()
    return sent, answer


def test_an_endless_chunked_body_without_a_key_is_refused_at_the_limit(studio_server):
    limit = settings.STUDIO_MAX_BODY_MB * MB
    started = time.monotonic()
    sent, answer = _send_endless_chunked(
        studio_server, "/api/v1/flows/anything/runs", give_up_after=limit + 20 * SOCKET_BUFFERS
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert f"the limit here is {settings.STUDIO_MAX_BODY_MB} MB".encode() in answer
    # It stopped reading: nothing near what the client would have sent got in.
    assert sent < limit + SOCKET_BUFFERS, sent
    assert time.monotonic() - started < 30
    # And it serves the next request.
    assert httpx.get(f"{studio_server}/accounts/login/").status_code == 200


def test_a_declared_length_past_the_limit_is_refused_before_the_body(studio_server):
    sock = _connect(studio_server)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000000000\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    answer = b""
    while data := sock.recv(65536):
        answer += data
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer  # not "100 Continue": send nothing
    assert b"100 Continue" not in answer
    assert f"{settings.STUDIO_MAX_BODY_MB} MB".encode() in answer


@pytest.mark.django_db(transaction=True)
def test_a_knowledge_upload_larger_than_the_default_limit_still_works(
    studio_server, workspace, owner, api_key, embedding_model
):
    kb_create(
        workspace=workspace, slug="handbook", values=BaseSettings(name="Handbook"), actor=owner
    )
    size = settings.STUDIO_MAX_BODY_MB * MB + 2 * MB
    assert size < settings.STUDIO_KNOWLEDGE_MAX_FILE_MB * MB
    text = ("A line of the handbook.\n" * (size // 24 + 1))[:size].encode()
    response = httpx.post(
        f"{studio_server}/api/v1/knowledge/handbook/documents",
        files={"file": ("handbook.txt", text, "text/plain")},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    assert Document.objects.get(id=response.json()["id"]).size == size


def test_a_file_past_the_upload_routes_own_limit_is_refused_as_it_arrives(studio_server):
    """The upload route's larger limit is a limit too: its files' worth, no more."""
    limit = settings.STUDIO_KNOWLEDGE_MAX_FILE_MB * MB + MB
    sent, answer = _send_endless_chunked(
        studio_server, "/api/v1/knowledge/handbook/documents", give_up_after=limit * 3
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < limit + SOCKET_BUFFERS


async def test_a_streaming_server_gets_the_same_refusal_from_the_application():
    """uvicorn or hypercorn hand the body to the application as it arrives: the studio's ASGI
    application refuses it once past the limit, before Django spools it."""
    from studio.asgi import application

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/flows/anything/runs",
        "raw_path": b"/api/v1/flows/anything/runs",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    communicator = ApplicationCommunicator(application, scope)
    chunk = b"[" * MB
    read = 0
    for _ in range(settings.STUDIO_MAX_BODY_MB + 1):
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": True})
        read += len(chunk)
    start = await communicator.receive_output(timeout=10)
    body = await communicator.receive_output(timeout=10)
    assert start["status"] == 413
    assert f"the limit here is {settings.STUDIO_MAX_BODY_MB} MB".encode() in body["body"]
    await communicator.wait(timeout=5)
