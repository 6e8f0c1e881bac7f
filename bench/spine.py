"""The spine benchmark: what the studio itself costs per run, with a model that costs nothing.

It measures the whole path of a streamed run through the real REST API: HTTP request → run row
→ Celery ``advance_run`` → executor → ``execute_node`` on the inference queue → the echo engine
→ token events (Redis log + channel layer) → Server-Sent Events back to the client. The echo
engine answers at once with the prompt, word by word, so what is left is the studio's overhead.

Everything runs in an isolated stack under ``var/bench/``: its own embedded PostgreSQL and Redis
(unless ``DATABASE_URL`` / ``REDIS_URL`` are set), a Daphne web server on a free port and an
all-in-one Celery worker (8 threads, with beat). Their logs go to ``var/bench/*.log``.

For each concurrency level C, C clients do streamed runs back to back until ``--runs`` runs are
done, and the script prints: time to first token (p50, p95), tokens/s seen by one client
(median of tokens / time from request to last token), aggregate tokens/s and runs/s over the
level's wall time, and the studio's overhead per run (total time minus the ``model_ms`` that
the LLM node reports: time spent inside the engine, without publishing its token events).

Run it from the repository root::

    .venv/bin/python bench/spine.py [--runs 40] [--tokens 128] [--concurrency 1,8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# STUDIO_BENCH_DIR lets two benchmarks of this family run side by side, each with its own stack.
BENCH_DIR = Path(os.environ.get("STUDIO_BENCH_DIR") or REPO / "var" / "bench")

# Before anything from studio reads it: the bench's data never mixes with var/pg or var/redis.
os.environ["STUDIO_VAR_DIR"] = str(BENCH_DIR)
os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.figures import percentile  # noqa: E402
from bench.load import back_to_back  # noqa: E402
from studio import embedded, launch  # noqa: E402

WORKSPACE = "bench"
MODEL = "bench-echo"
FLOW = "spine"
LLM_NODE = "llm_1"
WORKER_QUEUES = ["flows", "inference", "maintenance", "ingestion", "retrieval"]
WORKER_CONCURRENCY = 8
WARMUP_RUNS = 3
READY_TIMEOUT_S = 60.0


# --- The stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    """What this script started, so that it stops exactly that."""

    redis: subprocess.Popen | None = None
    postgres: bool = False
    web: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    port: int = 0

    def stop(self) -> None:
        launch.stop(self.web)
        launch.stop(self.worker)
        launch.stop(self.redis)
        if self.postgres:
            from django.conf import settings
            from django.db import connections

            if settings.configured:
                connections.close_all()
            embedded.postgres_stop()


def start_servers(stack: Stack) -> None:
    """The embedded Redis and PostgreSQL, unless REDIS_URL / DATABASE_URL name others."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("REDIS_URL"):
        stack.redis = embedded.redis_start()
        os.environ["REDIS_URL"] = embedded.embedded_redis_url()
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = embedded.postgres_url()
        stack.postgres = True


def migrate() -> None:
    result = subprocess.run(
        [launch.PYTHON, "manage.py", "migrate", "--no-input"],
        cwd=REPO,
        env=os.environ,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit("manage.py migrate failed")


def start_processes(stack: Stack) -> None:
    """The web server and the worker, logging to var/bench/{web,worker}.log."""
    stack.port = launch.free_port()
    schedule = BENCH_DIR / "celerybeat-schedule"
    worker = launch.worker_command(
        WORKER_QUEUES, concurrency=WORKER_CONCURRENCY, beat=True, schedule=schedule
    )
    # The children keep their own copies of the log files' descriptors.
    with open(BENCH_DIR / "web.log", "w") as web_log:
        stack.web = launch.start(
            launch.web_command(stack.port), stdout=web_log, stderr=subprocess.STDOUT
        )
    with open(BENCH_DIR / "worker.log", "w") as worker_log:
        stack.worker = launch.start(worker, stdout=worker_log, stderr=subprocess.STDOUT)
    launch.wait_for_port(stack.port, process=stack.web)


def check_alive(stack: Stack) -> None:
    for name, process in (("web server", stack.web), ("worker", stack.worker)):
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the {name} exited with {process.returncode}; see {BENCH_DIR}/*.log"
            )


# --- The benchmark's data -------------------------------------------------------------------


def prepare_data(tokens: int) -> str:
    """The workspace, echo model and published flow (created once, updated if needed).

    Returns a fresh API key; the previous benchmark keys are revoked.
    """
    import django

    django.setup()
    # Django's LOGGING sends INFO to the console: keep httpx's line per request out of the report.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.db import transaction

    from catalog.models import Model
    from catalog.services import model_create
    from flows.demo import assistant_graph
    from workspaces.models import Workspace
    from workspaces.services import workspace_create

    graph = assistant_graph(model=MODEL, max_tokens=tokens)
    with transaction.atomic():
        workspace = Workspace.objects.filter(slug=WORKSPACE).first() or workspace_create(
            slug=WORKSPACE, name="Benchmark"
        )
        if not Model.objects.filter(workspace=workspace, slug=MODEL).exists():
            model_create(
                slug=MODEL, name="Echo (benchmark)", engine="echo", settings={}, workspace=workspace
            )
        # Every request repeats one prompt: the response cache would measure Redis, not the spine.
        return publish_uncached(workspace, FLOW, "Spine", graph, key_name="bench")


def publish_uncached(workspace, slug: str, name: str, graph: dict, key_name: str) -> str:
    """Publish ``graph`` as the workspace's flow ``slug`` (a new version if it changed), with its
    response cache off, and return a fresh API key; the workspace's other keys are revoked."""
    from flows.models import Flow
    from flows.services import flow_create, flow_publish, flow_settings_change, flow_version_save
    from workspaces.models import ApiKey
    from workspaces.services import api_key_create, api_key_revoke

    flow = Flow.objects.filter(workspace=workspace, slug=slug).first()
    if flow is None:
        flow = flow_create(workspace=workspace, slug=slug, name=name, graph=graph)
        flow_publish(flow=flow)
    elif flow.published_version is None or flow.published_version.graph != graph:
        flow_publish(flow=flow, version=flow_version_save(flow=flow, graph=graph))
    flow_settings_change(flow=flow, response_cache=False)
    for old in ApiKey.objects.filter(workspace=workspace, revoked_at__isnull=True):
        api_key_revoke(api_key=old)
    _, key = api_key_create(workspace=workspace, name=key_name)
    return key


# --- One run through the API ----------------------------------------------------------------


@dataclass
class Sample:
    ttft_ms: float  # request sent → first token event
    tokens: int  # tokens received (an event may carry several)
    stream_ms: float  # first token → last token
    last_token_ms: float  # request sent → last token
    total_ms: float  # request sent → run.finished
    model_ms: float  # time inside the engine, as the LLM node reports it

    @property
    def client_tok_s(self) -> float:
        return self.tokens / (self.last_token_ms / 1000)

    @property
    def overhead_ms(self) -> float:
        return self.total_ms - self.model_ms


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict]]:
    """``(event type, data)`` of each Server-Sent Event; comments (keep-alives) are skipped."""
    kind, data = "message", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)


async def run_once(client: httpx.AsyncClient, key: str, message: str, tokens: int) -> Sample:
    """One streamed run; raises unless it finished with exactly ``tokens`` tokens (the echo
    engine's words) in its token events."""
    body = {"inputs": {"message": message}, "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    first = last = finished = None
    count = 0
    model_ms: float | None = None
    sent = time.perf_counter()
    async with client.stream("POST", f"/api/v1/flows/{FLOW}/runs", json=body, headers=headers) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread()).decode()[:500]}")
        async for kind, event in sse_events(r):
            now = time.perf_counter()
            if kind == "token":
                first = first or now
                last = now
                count += len(event["data"]["text"].split())  # an entry batches tokens
            elif kind == "node.finished" and event.get("node") == LLM_NODE:
                model_ms = float(event["data"]["model_ms"])
            elif kind == "run.failed":
                raise RuntimeError(f"run {event['run']} failed: {event['data'].get('reason')}")
            elif kind == "run.finished":
                finished = now
                break
    if finished is None:
        raise RuntimeError("the event stream ended without run.finished")
    if count != tokens or first is None or last is None:
        raise RuntimeError(f"expected {tokens} tokens, got {count}")
    if model_ms is None:
        raise RuntimeError(f"no node.finished event for {LLM_NODE} with model_ms")
    return Sample(
        ttft_ms=(first - sent) * 1000,
        tokens=count,
        stream_ms=(last - first) * 1000,
        last_token_ms=(last - sent) * 1000,
        total_ms=(finished - sent) * 1000,
        model_ms=model_ms,
    )


# --- Levels ---------------------------------------------------------------------------------


@dataclass
class Level:
    concurrency: int
    samples: list[Sample]
    wall_s: float


def make_client(stack: Stack, concurrency: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{stack.port}",
        timeout=httpx.Timeout(60.0),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )


async def wait_ready(stack: Stack, key: str, message: str, tokens: int) -> None:
    """One run that succeeds: the web server and the worker both serve."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with make_client(stack, 1) as client:
        task = asyncio.create_task(run_once(client, key, message, tokens))
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            if not task.done():
                try:
                    check_alive(stack)
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no run finished within {READY_TIMEOUT_S:g} s")
                except Exception:
                    task.cancel()
                    raise
        task.result()
        for _ in range(WARMUP_RUNS):
            await run_once(client, key, message, tokens)


async def run_level(stack: Stack, key: str, message: str, tokens: int, c: int, runs: int) -> Level:
    """``c`` clients doing runs back to back until ``runs`` are done."""

    async def once(client: httpx.AsyncClient) -> Sample:
        return await run_once(client, key, message, tokens)

    async with make_client(stack, c) as client:
        samples, wall_s = await back_to_back([client] * c, once, runs)
    check_alive(stack)
    return Level(concurrency=c, samples=samples, wall_s=wall_s)


async def measure(stack: Stack, key: str, tokens: int, runs: int, levels: list[int]) -> list[Level]:
    message = " ".join(f"w{i}" for i in range(tokens))  # the echo engine: one word, one token
    await wait_ready(stack, key, message, tokens)
    return [await run_level(stack, key, message, tokens, c, runs) for c in levels]


# --- Report ---------------------------------------------------------------------------------


def figures(level: Level) -> dict[str, float]:
    s = level.samples
    ttft = [x.ttft_ms for x in s]
    overhead = [x.overhead_ms for x in s]
    return {
        "runs": len(s),
        "ttft_p50_ms": percentile(ttft, 50),
        "ttft_p95_ms": percentile(ttft, 95),
        "stream_p50_ms": percentile([x.stream_ms for x in s], 50),
        "total_p50_ms": percentile([x.total_ms for x in s], 50),
        "model_p50_ms": percentile([x.model_ms for x in s], 50),
        "client_tok_s_p50": statistics.median(x.client_tok_s for x in s),
        "agg_tok_s": sum(x.tokens for x in s) / level.wall_s,
        "runs_s": len(s) / level.wall_s,
        "overhead_p50_ms": percentile(overhead, 50),
        "overhead_p95_ms": percentile(overhead, 95),
    }


COLUMNS = [
    ("c", "{:>3}", 3),
    ("runs", "{:>5}", 5),
    ("ttft p50 ms", "{:>11.1f}", 11),
    ("ttft p95 ms", "{:>11.1f}", 11),
    ("stream p50 ms", "{:>13.1f}", 13),
    ("total p50 ms", "{:>12.1f}", 12),
    ("model p50 ms", "{:>12.1f}", 12),
    ("client tok/s", "{:>12.0f}", 12),
    ("agg tok/s", "{:>9.0f}", 9),
    ("runs/s", "{:>6.2f}", 6),
    ("overhead p50 ms", "{:>15.1f}", 15),
    ("overhead p95 ms", "{:>15.1f}", 15),
]


def report(levels: list[Level], tokens: int) -> None:
    print(f"\nspine benchmark: echo engine, {tokens} tokens per run, streamed over SSE")
    print("  ".join(f"{name:>{width}}" for name, _, width in COLUMNS))
    for level in levels:
        f = figures(level)
        row = [level.concurrency, *f.values()]
        print("  ".join(fmt.format(value) for (_, fmt, _), value in zip(COLUMNS, row, strict=True)))
    print()
    for level in levels:
        f = figures(level)
        print(
            f"spine c={level.concurrency} runs={f['runs']} ttft_p50_ms={f['ttft_p50_ms']:.1f} "
            f"ttft_p95_ms={f['ttft_p95_ms']:.1f} client_tok_s_p50={f['client_tok_s_p50']:.0f} "
            f"agg_tok_s={f['agg_tok_s']:.0f} runs_s={f['runs_s']:.2f} "
            f"overhead_p50_ms={f['overhead_p50_ms']:.1f} "
            f"overhead_p95_ms={f['overhead_p95_ms']:.1f}"
        )


# --- Main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per concurrency level")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per run")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(c) for c in text.split(",") if c.strip()],
        default=[1, 8],
        help="comma-separated concurrency levels (default 1,8)",
    )
    args = parser.parse_args()
    if args.runs < 1 or args.tokens < 1 or not args.concurrency or min(args.concurrency) < 1:
        parser.error("--runs, --tokens and each concurrency level must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    stack = Stack()
    try:
        start_servers(stack)
        print(f"stack      {BENCH_DIR} (logs: web.log, worker.log)")
        migrate()
        key = prepare_data(args.tokens)
        start_processes(stack)
        print(f"serving    http://127.0.0.1:{stack.port}/ ({WORKER_CONCURRENCY} worker threads)")
        levels = asyncio.run(measure(stack, key, args.tokens, args.runs, args.concurrency))
    finally:
        stack.stop()
    report(levels, args.tokens)


if __name__ == "__main__":
    main()
