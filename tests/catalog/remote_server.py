"""A local HTTP server that speaks OpenAI's chat completions and embeddings protocols and the
Jina/Cohere rerank protocol, for the tests of the ``openai_compatible`` engine: the network
boundary, played by a real socket.

Each test scripts the replies (``server.script(Reply(...), ...)``); the server answers requests
in that order, repeating the last reply, and records every request it received. A 200 reply to
``…/embeddings`` or ``…/rerank`` is computed from the request, so that tests can check the
numbers: ``letter_counts`` of each input (in reverse order, as the protocol's ``index`` allows),
``word_overlap`` of each document (best first, as rerank servers answer). A hostile server floods
(``Reply(flood=...)``): it sends the same text until the client hangs up.
"""

from __future__ import annotations

import json
import re
import string
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    # Streamed as server-sent events (a dict becomes its JSON); only for status 200.
    events: list[Any] = field(default_factory=list)
    # The body of a non-200 reply.
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the status line: a slow server
    gap_s: float = 0.0  # between events: a slow stream
    done: bool = True  # end with "data: [DONE]"
    cut: bool = False  # drop the connection after the events, mid-body
    # The JSON body of a 200 reply, instead of events or a computed answer (a malformed one).
    json: Any = None
    # A hostile server: after the events (or instead of a JSON answer), this text again and
    # again until the client hangs up: a line that never ends, a body that never ends.
    flood: str = ""
    # With ``flood``: a Content-Length to announce instead of a chunked body.
    announce: int | None = None


# How long and how much a flood sends when the client never hangs up (a test that failed).
FLOOD_S = 30.0
FLOOD_BYTES = 256 * 1024 * 1024


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    json: dict[str, Any]
    port: int  # the client's port: one port for several requests means a reused connection


def text_events(
    *pieces: str,
    usage: tuple[int, int] | None = (7, 0),
    finish: str = "stop",
) -> list[dict]:
    """The events of a streamed answer: a role delta, one delta per piece, the finish reason,
    and (when ``usage`` is given) the usage event; ``usage[1] == 0`` means "one per piece"."""

    def choice(delta: dict, finish_reason: str | None = None) -> dict:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    events = [choice({"role": "assistant", "content": ""})]
    events += [choice({"content": piece}) for piece in pieces]
    events.append(choice({}, finish))
    if usage is not None:
        prompt, completion = usage[0], usage[1] or len(pieces)
        events.append(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )
    return events


def letter_counts(text: str) -> list[float]:
    """The embedding the server computes: how often each of a…z occurs (any case), then 1.0, so
    that no text gets the zero vector. Not normalised: the engine must do that."""
    lower = text.lower()
    return [float(lower.count(letter)) for letter in string.ascii_lowercase] + [1.0]


def word_overlap(query: str, document: str) -> float:
    """The relevance score the server computes: the share of the query's words in the
    document."""
    wanted = set(re.findall(r"\w+", query.lower()))
    found = wanted & set(re.findall(r"\w+", document.lower()))
    return len(found) / len(wanted) if wanted else 0.0


def embeddings_answer(payload: dict[str, Any]) -> dict[str, Any]:
    inputs = payload.get("input")
    inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
    data = [
        {"object": "embedding", "index": i, "embedding": letter_counts(text)}
        for i, text in enumerate(inputs)
    ]
    tokens = sum(len(text.split()) for text in inputs)
    return {
        "object": "list",
        "model": payload.get("model"),
        "data": data[::-1],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def rerank_answer(payload: dict[str, Any]) -> dict[str, Any]:
    query = payload.get("query", "")
    documents = payload.get("documents") or []
    results = [
        {"index": i, "relevance_score": word_overlap(query, doc), "document": {"text": doc}}
        for i, doc in enumerate(documents)
    ]
    results.sort(key=lambda r: r["relevance_score"], reverse=True)
    return {"id": "rerank-1", "model": payload.get("model"), "results": results}


class RemoteServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies: deque[Reply] = deque([Reply(events=text_events("Hello", " there"))])
        self.requests: list[Received] = []
        self.closed_ports: list[int] = []  # connections the client closed
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies = deque(replies)
            self.requests.clear()

    def next_reply(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            return self.replies.popleft() if len(self.replies) > 1 else self.replies[0]

    def handle_error(self, request, client_address) -> None:
        # A client that gave up (a timeout test) leaves a broken pipe behind: expected here.
        pass

    def start(self) -> RemoteServer:
        threading.Thread(target=self.serve_forever, name="remote-server", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 with chunked bodies, so a cut connection is an incomplete body, as in real life.
    protocol_version = "HTTP/1.1"
    server: RemoteServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            payload = {"raw": raw.decode(errors="replace")}
        received = Received(self.path, dict(self.headers.items()), payload, self.client_address[1])
        reply = self.server.next_reply(received)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.flood:
            self._flood(reply)
            return
        answer = reply.json
        if answer is None and reply.status == 200 and self.path.endswith("/embeddings"):
            answer = embeddings_answer(payload)
        elif answer is None and reply.status == 200 and self.path.endswith("/rerank"):
            answer = rerank_answer(payload)
        if reply.status != 200 or answer is not None:
            body = reply.body.encode() if answer is None else json.dumps(answer).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        for event in reply.events:
            data = event if isinstance(event, str) else json.dumps(event)
            self._chunk(f"data: {data}\n\n")
            if reply.gap_s:
                time.sleep(reply.gap_s)
        if reply.cut:
            self.close_connection = True
            return
        if reply.done:
            self._chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _flood(self, reply: Reply) -> None:
        streamed = self.path.endswith("/chat/completions")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if streamed else "application/json")
        if reply.announce is None:
            self.send_header("Transfer-Encoding", "chunked")
            write = self._chunk
        else:
            self.send_header("Content-Length", str(reply.announce))
            write = self._raw
        self.end_headers()
        self.close_connection = True
        deadline = time.monotonic() + FLOOD_S
        try:
            for event in reply.events:
                write(f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n")
            for _ in range(FLOOD_BYTES // len(reply.flood.encode())):
                write(reply.flood)
                if time.monotonic() > deadline:
                    break
        except OSError:  # the client hung up: what a flood waits for
            pass

    def _raw(self, text: str) -> None:
        self.wfile.write(text.encode())
        self.wfile.flush()

    def finish(self) -> None:
        super().finish()
        self.server.closed_ports.append(self.client_address[1])

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, *args) -> None:
        pass
