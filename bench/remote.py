"""The remote-model benchmark: what a non-streamed run through the API costs over a direct call
to the model's server, when that server answers at once.

A fake OpenAI-compatible server runs in this process (``FakeModelServer``: a threaded HTTP server
on 127.0.0.1 that answers ``POST /v1/chat/completions`` at once with a short fixed completion,
streamed as Server-Sent Events or as one JSON body, as the request asks). The catalog holds an
``openai_compatible`` entry whose ``base_url`` points at it, and a published flow
input → llm → output runs on that entry, with the flow's response cache off and a distinct prompt
per request anyway. Two paths serve the same number of requests at each concurrency level C:

- ``studio``: ``POST /api/v1/flows/<slug>/runs`` with ``{"inputs": …}`` and no ``stream``: the
  view waits for the run and answers its payload. Latency runs from the POST to the whole answer;
  the run must have succeeded with the server's completion as its output.
- ``direct``: the body the engine sent during the warm-up (captured by the fake server; only the
  user message changes) posted straight to the fake server, and the event stream read to its end.

At each level C clients send requests back to back until ``--runs`` are done, each client on a
persistent connection of its own (an ``httpx.AsyncClient`` of one connection), on both paths.
The report gives p50 and p95 latency of both paths, the studio's extra p50 over direct, and
runs/s of each over the level's wall time; at C=1 it says whether the studio met its target
(p50 at most ``TARGET_MS`` over direct). The fake server counts the requests it answered, so a
run answered without reaching the model (a cache) is an error.

The worker may reach the loopback server because this script puts 127.0.0.1 into
``STUDIO_EGRESS_ALLOW_MODELS`` before it starts the stack's processes. Everything else is the
isolated stack of ``bench/spine.py`` (``var/bench/``, or ``STUDIO_BENCH_DIR``; logs there)::

    .venv/bin/python bench/remote.py [--runs 200] [--concurrency 1,8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import json
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import spine  # noqa: E402  (sets the bench's var dir before Django loads)

from bench.figures import percentile  # noqa: E402
from bench.load import back_to_back  # noqa: E402
from bench.openai_wire import allow_loopback_models, chunk, reply  # noqa: E402

WORKSPACE = "bench-remote"
MODEL = "bench-remote"
WEIGHTS = "bench-served-model"
FLOW = "remote"
MAX_TOKENS = 16
ANSWER_PIECES = ("Hello", " from", " the", " fake", " server.")
ANSWER = "".join(ANSWER_PIECES)
# The target: a run through the API at most this much slower than the server itself.
TARGET_MS = 15.0
WARMUP_RUNS = 5
READY_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 120.0


# --- The fake model server ------------------------------------------------------------------


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 12, "completion_tokens": len(ANSWER_PIECES), "total_tokens": 17}


def streamed_answer() -> bytes:
    """The SSE body of a streamed completion: role, one delta per piece, finish, usage, DONE."""
    events = [chunk(WEIGHTS, {"role": "assistant", "content": ""})]
    events += [chunk(WEIGHTS, {"content": piece}) for piece in ANSWER_PIECES]
    events.append(chunk(WEIGHTS, {}, "stop"))
    events.append({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "choices": []})
    events[-1]["usage"] = _usage()
    lines = [f"data: {json.dumps(event)}\n\n" for event in events] + ["data: [DONE]\n\n"]
    return "".join(lines).encode()


def whole_answer() -> bytes:
    """The JSON body of a non-streamed completion."""
    message = {"role": "assistant", "content": ANSWER}
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "model": WEIGHTS,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": _usage(),
        }
    ).encode()


class FakeModelServer(ThreadingHTTPServer):
    """Answers every chat completion at once with the same short text; counts the requests and
    keeps the last body, so the benchmark can check that each run reached it and can send the
    engine's own body on the direct path."""

    daemon_threads = True
    # Up to 32 clients connect at once, and the worker's pool on top.
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.streamed = streamed_answer()
        self.whole = whole_answer()
        self.requests = 0
        self.last_body: dict[str, Any] = {}
        self.last_headers: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def received(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests += 1
            self.last_body, self.last_headers = body, headers

    def start(self) -> FakeModelServer:
        threading.Thread(target=self.serve_forever, name="fake-model", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: both clients reuse their connections
    # Headers and body leave in one write (flushed after the request), without Nagle's delay.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: FakeModelServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.endswith("/chat/completions"):
            reply(self, 404, "application/json", b'{"error": {"message": "not found"}}')
            return
        try:
            body = json.loads(raw)
        except ValueError:
            reply(self, 400, "application/json", b'{"error": {"message": "not JSON"}}')
            return
        self.server.received(body, {k.lower(): v for k, v in self.headers.items()})
        if body.get("stream"):
            reply(self, 200, "text/event-stream", self.server.streamed)
        else:
            reply(self, 200, "application/json", self.server.whole)

    def log_message(self, *args: Any) -> None:
        pass


# --- The benchmark's data -------------------------------------------------------------------


def flow_graph() -> dict[str, Any]:
    llm = {"model": MODEL, "prompt": "{{input_1.message}}", "max_tokens": MAX_TOKENS}
    return {
        "nodes": [
            {
                "id": "input_1",
                "type": "input",
                "config": {"fields": [{"name": "message", "type": "text"}]},
            },
            {"id": "llm_1", "type": "llm", "config": llm | {"temperature": 0}},
            {
                "id": "output_1",
                "type": "output",
                "config": {"fields": [{"name": "text", "type": "text"}]},
            },
        ],
        "edges": [
            {"source": "llm_1", "source_port": "text", "target": "output_1", "target_port": "text"}
        ],
    }


def prepare_data(base_url: str) -> str:
    """The workspace, the remote catalog entry (pointed at ``base_url``) and the published flow
    without response cache. Returns a fresh API key; the previous benchmark keys are revoked."""
    import django

    django.setup()
    # Django's LOGGING sends INFO to the console: keep httpx's line per request out of the report.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.db import transaction

    from catalog.models import Model
    from catalog.services import model_create, model_update
    from workspaces.models import Workspace
    from workspaces.services import workspace_create

    graph = flow_graph()
    settings = {"base_url": base_url, "retries": 0}
    with transaction.atomic():
        workspace = Workspace.objects.filter(slug=WORKSPACE).first() or workspace_create(
            slug=WORKSPACE, name="Remote benchmark"
        )
        model = Model.objects.filter(workspace=workspace, slug=MODEL).first()
        if model is None:
            model_create(
                slug=MODEL,
                name="Fake remote (benchmark)",
                engine="openai_compatible",
                weights=WEIGHTS,
                settings=settings,
                workspace=workspace,
            )
        else:  # the fake server has a new port each time
            model_update(model=model, settings=settings)
        return spine.publish_uncached(workspace, FLOW, "Remote", graph, key_name="bench-remote")


# --- The two paths --------------------------------------------------------------------------

_prompts = itertools.count()


def prompt() -> str:
    """A prompt no other request of this process had."""
    return f"Question {next(_prompts)}: what does the fake server say?"


async def studio_once(client: httpx.AsyncClient, key: str) -> float:
    """One non-streamed run through the API; its latency in ms. Raises unless the run
    succeeded with the server's answer as its output."""
    body = {"inputs": {"message": prompt()}}
    headers = {"Authorization": f"Bearer {key}"}
    sent = time.perf_counter()
    response = await client.post(f"/api/v1/flows/{FLOW}/runs", json=body, headers=headers)
    elapsed = (time.perf_counter() - sent) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"studio: HTTP {response.status_code}: {response.text[:500]}")
    run = response.json()
    if run["status"] != "succeeded" or run["outputs"] != {"text": ANSWER}:
        raise RuntimeError(f"studio: run {run['run_id']} {run['status']}: {run['error']}")
    return elapsed


def sse_text(raw: str) -> str:
    """The content deltas of an SSE completion, joined."""
    text = []
    for line in raw.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices") or []:
                text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text)


@dataclass
class Direct:
    """The request the engine makes, to send straight to the server: the body and headers it
    sent during the warm-up; each request gets its own user message."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str]

    async def once(self, client: httpx.AsyncClient) -> float:
        body = copy.deepcopy(self.body)
        body["messages"][-1]["content"] = prompt()
        sent = time.perf_counter()
        response = await client.post(self.url, json=body, headers=self.headers)
        elapsed = (time.perf_counter() - sent) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"direct: HTTP {response.status_code}: {response.text[:500]}")
        if body.get("stream"):
            text = sse_text(response.text)
        else:
            text = response.json()["choices"][0]["message"]["content"]
        if text != ANSWER:
            raise RuntimeError(f"direct: unexpected answer {text!r}")
        return elapsed


# --- Levels ---------------------------------------------------------------------------------


@dataclass
class Level:
    concurrency: int
    latencies_ms: list[float]
    wall_s: float

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def runs_s(self) -> float:
        return len(self.latencies_ms) / self.wall_s


def client(base_url: str) -> httpx.AsyncClient:
    """One simulated client: a persistent connection of its own."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(REQUEST_TIMEOUT_S),
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


async def run_level(
    base_url: str, once: Callable[[httpx.AsyncClient], Awaitable[float]], c: int, runs: int
) -> Level:
    """``c`` clients sending requests back to back until ``runs`` are done; each first sends
    one request that is not counted, so that no level pays for connecting.

    Each client has its own httpx client: one pool of 32 connections shared by 32 tasks costs
    httpx more than the fake server takes to answer (direct runs/s fell about fourfold from 8
    to 32 clients on one pool, and grew with one pool per client)."""
    clients = [client(base_url) for _ in range(c)]
    try:
        await asyncio.gather(*(once(http) for http in clients))
        latencies, wall_s = await back_to_back(clients, once, runs)
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    return Level(concurrency=c, latencies_ms=latencies, wall_s=wall_s)


async def wait_ready(stack: spine.Stack, studio_url: str, key: str) -> None:
    """One run that succeeds (the web server and the worker both serve), then a few more so
    that the worker has its engine and connections."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with client(studio_url) as http:
        task = asyncio.create_task(studio_once(http, key))
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            if not task.done():
                try:
                    spine.check_alive(stack)
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no run finished within {READY_TIMEOUT_S:g} s")
                except Exception:
                    task.cancel()
                    raise
        task.result()
        for _ in range(WARMUP_RUNS):
            await studio_once(http, key)


@dataclass
class Row:
    studio: Level
    direct: Level


async def measure(
    stack: spine.Stack, server: FakeModelServer, key: str, runs: int, levels: list[int]
) -> list[Row]:
    studio_url = f"http://127.0.0.1:{stack.port}"
    await wait_ready(stack, studio_url, key)
    headers = {k: v for k, v in server.last_headers.items() if k in ("accept", "authorization")}
    direct = Direct(url="/chat/completions", body=server.last_body, headers=headers)
    rows = []
    for c in levels:
        before = server.requests
        studio = await run_level(studio_url, lambda http: studio_once(http, key), c, runs)
        spine.check_alive(stack)
        reached = server.requests - before
        if reached != runs + c:
            raise RuntimeError(f"{runs + c} studio runs made {reached} requests to the server")
        straight = await run_level(server.base_url, direct.once, c, runs)
        rows.append(Row(studio=studio, direct=straight))
    return rows


# --- Report ---------------------------------------------------------------------------------

COLUMNS = [
    ("c", "{:>3}", 3),
    ("runs", "{:>5}", 5),
    ("studio p50 ms", "{:>13.1f}", 13),
    ("studio p95 ms", "{:>13.1f}", 13),
    ("direct p50 ms", "{:>13.1f}", 13),
    ("direct p95 ms", "{:>13.1f}", 13),
    ("studio-direct p50", "{:>17.1f}", 17),
    ("studio runs/s", "{:>13.1f}", 13),
    ("direct runs/s", "{:>13.1f}", 13),
]


def report(rows: list[Row]) -> None:
    print("\nremote benchmark: non-streamed runs through the API vs direct calls, fake server")
    print("  ".join(f"{name:>{width}}" for name, _, width in COLUMNS))
    for row in rows:
        s, d = row.studio, row.direct
        values = [
            s.concurrency,
            len(s.latencies_ms),
            s.p(50),
            s.p(95),
            d.p(50),
            d.p(95),
            s.p(50) - d.p(50),
            s.runs_s,
            d.runs_s,
        ]
        print("  ".join(fmt.format(v) for (_, fmt, _), v in zip(COLUMNS, values, strict=True)))
    print()
    for row in rows:
        s, d = row.studio, row.direct
        print(
            f"remote c={s.concurrency} runs={len(s.latencies_ms)} "
            f"studio_p50_ms={s.p(50):.1f} studio_p95_ms={s.p(95):.1f} "
            f"direct_p50_ms={d.p(50):.1f} direct_p95_ms={d.p(95):.1f} "
            f"delta_p50_ms={s.p(50) - d.p(50):.1f} "
            f"studio_runs_s={s.runs_s:.1f} direct_runs_s={d.runs_s:.1f}"
        )
    for row in rows:
        if row.studio.concurrency == 1:
            extra = row.studio.p(50) - row.direct.p(50)
            verdict = "met" if extra <= TARGET_MS else "NOT met"
            print(f"target c=1: studio p50 <= direct p50 + {TARGET_MS:g} ms: {verdict}")


# --- Main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="requests per path and level")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(c) for c in text.split(",") if c.strip()],
        default=[1, 8, 32],
        help="comma-separated concurrency levels (default 1,8,32)",
    )
    args = parser.parse_args()
    if args.runs < 1 or not args.concurrency or min(args.concurrency) < 1:
        parser.error("--runs and each concurrency level must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    allow_loopback_models()
    server = FakeModelServer().start()
    stack = spine.Stack()
    try:
        spine.start_servers(stack)
        print(f"stack      {spine.BENCH_DIR} (logs: web.log, worker.log)")
        spine.migrate()
        key = prepare_data(server.base_url)
        spine.start_processes(stack)
        print(f"serving    http://127.0.0.1:{stack.port}/; model server {server.base_url}")
        rows = asyncio.run(measure(stack, server, key, args.runs, args.concurrency))
    finally:
        stack.stop()
        server.stop()
    report(rows)


if __name__ == "__main__":
    main()
