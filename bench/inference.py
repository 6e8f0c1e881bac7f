"""The inference benchmark: an engine's throughput and time to first token, straight into the
engine and through the studio, at several concurrency levels.

On a GPU machine (an NVIDIA GPU, the model's weights on disk or reachable on the Hub)::

    pip install -e '.[gpu]'
    python bench/inference.py --engine vllm --weights <hf id or folder>

On CPU, with the bundled SmolLM2-135M (the default)::

    .venv/bin/python bench/inference.py [--concurrency 1,8,64] [--max-tokens 16] [--requests N]

Both paths serve the same requests (greedy decoding, one distinct prompt per request, so neither
the response cache nor vLLM's prefix cache can answer one from another):

- ``direct``: the engine is built once in this process (``engine_class(kind)(EngineSpec(…))``,
  from the catalog entry that the studio path uses) and C concurrent ``stream()`` calls run on one
  event loop. Time to first token runs from the call to the first text chunk.
- ``studio``: a published flow input → llm → output, each run started with
  ``POST /api/v1/flows/<slug>/runs`` and followed over Server-Sent Events, as ``bench/spine.py``
  does: Daphne, a ``flows`` worker, and an engine worker deployed as a GPU worker is (one process,
  a thread pool as wide as the highest level, serving only the engine's queue). Time to first
  token runs from the POST to the first token event; the output tokens are those the LLM node
  reports.

At each level C, C clients send requests back to back until ``--requests`` are done. Aggregate
tokens/s is the output tokens of the level over its wall time; the report gives the studio/direct
ratio of it at each level, and for vLLM whether the studio reached 90% of direct at C=64. It exits
non-zero if any request fails.

Both engines batch concurrent requests, so their throughput should grow with concurrency. The
CPU engine decodes up to ``max_batch_size`` requests (32) in one forward pass and, between steps,
reads the prompts that wait together in one pass, up to ``max_prefill_tokens`` (256) padded
tokens per round, so a burst's first tokens come after one or a few batched prefills.

Everything runs in the isolated stack of ``bench/spine.py`` (``var/bench/``; logs in
``var/bench/inference-*.log``). The bundled model is converted once into ``var/models``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# The bundled model is converted once for `make up`, the tests and the benchmarks alike.
os.environ.setdefault("STUDIO_MODEL_DIR", str(REPO / "var" / "models"))
# A run may wait long: behind a CPU model serving 64 requests one by one, or vLLM's first load.
os.environ.setdefault("STUDIO_RUN_TIMEOUT_S", "3600")

import httpx  # noqa: E402

from bench import spine  # noqa: E402 - sets STUDIO_VAR_DIR (var/bench) and the settings module
from studio import embedded, launch  # noqa: E402

BENCH_DIR = spine.BENCH_DIR
LLM_NODE = spine.LLM_NODE
FLOWS_WORKER_THREADS = 8
WARMUP_REQUESTS = 2
# How long the first run may take: the engine worker loads the model on its first request.
READY_TIMEOUT_S = {"cpu": 300.0, "vllm": 1800.0}
DEFAULT_MAX_TOKENS = {"cpu": 16, "vllm": 256}
TARGET_RATIO = 0.9


def default_requests(kind: str, concurrency: int) -> int:
    # Enough to keep every client busy; on CPU no more, since each request takes seconds.
    return max(concurrency, 4) if kind == "cpu" else max(4 * concurrency, 32)


def message(concurrency: int, index: int) -> str:
    return f"Request {concurrency}-{index}: write a short story about the number {index}."


# --- Measuring --------------------------------------------------------------------------------


@dataclass
class Sample:
    ttft_ms: float  # request sent → first text
    tokens: int  # output tokens the engine reports
    total_ms: float  # request sent → the answer's end


@dataclass
class Level:
    path: str
    concurrency: int
    samples: list[Sample]
    wall_s: float

    @property
    def agg_tok_s(self) -> float:
        return sum(s.tokens for s in self.samples) / self.wall_s


async def closed_loop(
    path: str, concurrency: int, requests: int, once: Callable[[int], Awaitable[Sample]]
) -> Level:
    """``concurrency`` clients sending ``once(i)`` back to back until ``requests`` are done."""
    samples: list[Sample] = []
    issued = 0

    async def client() -> None:
        nonlocal issued
        while issued < requests:
            index = issued
            issued += 1
            samples.append(await once(index))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return Level(path, concurrency, samples, time.perf_counter() - started)


async def direct_once(engine, messages: list[dict], max_tokens: int) -> Sample:
    from catalog.engines.base import GenerationRequest

    request = GenerationRequest(messages=messages, max_tokens=max_tokens, temperature=0.0)
    sent = time.perf_counter()
    first = None
    final = None
    async for chunk in engine.stream(request):
        if chunk.text and first is None:
            first = time.perf_counter()
        if chunk.finish_reason:
            final = chunk
    ended = time.perf_counter()
    if final is None or not final.output_tokens:
        raise RuntimeError(f"the engine's answer ended without output tokens: {final}")
    return Sample((((first or ended) - sent) * 1000), final.output_tokens, (ended - sent) * 1000)


async def measure_direct(
    engine, system: str, levels: list[int], requests_for: Callable[[int], int], max_tokens: int
) -> list[Level]:
    def messages(c: int, i: int) -> list[dict]:
        return [{"role": "system", "content": system}, {"role": "user", "content": message(c, i)}]

    for i in range(WARMUP_REQUESTS):
        await direct_once(engine, messages(0, i), max_tokens)
    results = []
    for c in levels:
        results.append(
            await closed_loop(
                "direct",
                c,
                requests_for(c),
                lambda i, c=c: direct_once(engine, messages(c, i), max_tokens),
            )
        )
    return results


async def studio_once(client: httpx.AsyncClient, key: str, flow: str, text: str) -> Sample:
    body = {"inputs": {"message": text}, "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    first = finished = None
    tokens: int | None = None
    sent = time.perf_counter()
    async with client.stream("POST", f"/api/v1/flows/{flow}/runs", json=body, headers=headers) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread()).decode()[:500]}")
        async for kind, event in spine.sse_events(r):
            if kind == "token" and first is None:
                first = time.perf_counter()
            elif kind == "node.finished" and event.get("node") == LLM_NODE:
                tokens = int(event["data"]["output_tokens"])
            elif kind == "run.failed":
                raise RuntimeError(f"run {event['run']} failed: {event['data'].get('reason')}")
            elif kind == "run.finished":
                finished = time.perf_counter()
                break
    if finished is None:
        raise RuntimeError("the event stream ended without run.finished")
    if not tokens:
        raise RuntimeError(f"the LLM node reported no output tokens ({tokens})")
    return Sample(((first or finished) - sent) * 1000, tokens, (finished - sent) * 1000)


def make_client(port: int, concurrency: int) -> httpx.AsyncClient:
    # No read timeout: on CPU a request may wait minutes for its turn (keep-alives arrive anyway).
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        timeout=httpx.Timeout(60.0, read=None),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )


async def measure_studio(
    stack: InferenceStack,
    key: str,
    flow: str,
    levels: list[int],
    requests_for: Callable[[int], int],
    ready_timeout_s: float,
) -> list[Level]:
    async with make_client(stack.port, 1) as client:
        # The first run also waits for the engine worker to load the model.
        first = asyncio.create_task(studio_once(client, key, flow, message(0, 0)))
        deadline = time.monotonic() + ready_timeout_s
        while not first.done():
            await asyncio.wait({first}, timeout=0.5)
            if not first.done() and (stack.dead() or time.monotonic() > deadline):
                first.cancel()
                raise RuntimeError(
                    stack.dead()
                    or f"no run finished within {ready_timeout_s:g} s; "
                    f"see {BENCH_DIR}/inference-*.log"
                )
        first.result()
        for i in range(1, WARMUP_REQUESTS):
            await studio_once(client, key, flow, message(0, i))
    results = []
    for c in levels:
        async with make_client(stack.port, c) as client:
            level = await closed_loop(
                "studio",
                c,
                requests_for(c),
                lambda i, c=c, client=client: studio_once(client, key, flow, message(c, i)),
            )
        if problem := stack.dead():
            raise RuntimeError(problem)
        results.append(level)
    return results


# --- The stack and the benchmark's data --------------------------------------------------------


@dataclass
class InferenceStack(spine.Stack):
    """The spine's stack (servers, web, ``flows`` worker) and an engine worker."""

    engine_worker: subprocess.Popen | None = None

    def stop(self) -> None:
        # The engine worker first: it holds the GPU, and it needs Redis to shut down cleanly.
        launch.stop(self.engine_worker, timeout=60)
        super().stop()

    def dead(self) -> str | None:
        processes = {"web server": self.web, "flows worker": self.worker}
        processes["engine worker"] = self.engine_worker
        for name, process in processes.items():
            if process is not None and process.poll() is not None:
                return f"the {name} exited with {process.returncode}; see {BENCH_DIR}/*.log"
        return None


def start_processes(stack: InferenceStack, queue: str, threads: int) -> None:
    """Daphne, a ``flows`` worker with beat, and the engine worker: one process, ``threads``
    task threads feeding its one resident engine (how a GPU worker is deployed)."""
    stack.port = launch.free_port()
    flows = launch.worker_command(
        ["flows", "maintenance"],
        concurrency=FLOWS_WORKER_THREADS,
        name="bench-flows",
        schedule=BENCH_DIR / "celerybeat-schedule",
    )
    engine = launch.worker_command([queue], concurrency=threads, beat=False, name="bench-engine")
    for name, command, attribute in (
        ("web", launch.web_command(stack.port), "web"),
        ("flows-worker", flows, "worker"),
        ("engine-worker", engine, "engine_worker"),
    ):
        # The children keep their own copies of the log files' descriptors.
        with open(BENCH_DIR / f"inference-{name}.log", "w") as log:
            setattr(stack, attribute, launch.start(command, stdout=log, stderr=subprocess.STDOUT))
    launch.wait_for_port(stack.port, process=stack.web)


def ensure_connection_room(stack: InferenceStack, needed: int) -> None:
    """Let PostgreSQL take ``needed`` connections, restarting the bench's embedded server if not.

    Each streamed run holds a connection in the web server while its client follows it, and each
    engine-worker thread one while its node runs: at C=64 that is already more than PostgreSQL's
    default of 100. An external server (DATABASE_URL) is left alone, with a warning.
    """
    from django.db import connection, connections

    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        current = int(cursor.fetchone()[0])
        if current >= needed:
            return
        if not stack.postgres:
            print(f"warning    PostgreSQL allows {current} connections; this run needs ~{needed}")
            return
        cursor.execute(f"ALTER SYSTEM SET max_connections = {int(needed)}")
    connections.close_all()
    embedded.postgres_stop()
    # Started from another process: this one's pgserver handle still names the old postmaster.
    start = "from studio import embedded; embedded.postgres_url()"
    subprocess.run([launch.PYTHON, "-c", start], cwd=REPO, env=os.environ, check=True)
    print(f"postgres   max_connections {current} → {needed} (restarted)")


@dataclass
class Prepared:
    key: str
    flow: str
    system: str
    queue: str
    spec: object  # catalog.engines.base.EngineSpec, built as the worker builds it


def prepare_data(args: argparse.Namespace, max_tokens: int) -> Prepared:
    """The benchmark workspace's model entry and published flow for this engine, and a new key
    (the previous keys of this benchmark are revoked)."""
    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.db import transaction

    from catalog.models import Model
    from catalog.selectors.models import engine_spec, model_queue
    from catalog.services import model_create, model_update
    from flows.demo import assistant_graph
    from flows.models import Flow
    from flows.services import flow_create, flow_publish, flow_settings_change, flow_version_save
    from workspaces.models import ApiKey, Workspace
    from workspaces.services import api_key_create, api_key_revoke, workspace_create

    slug = f"bench-{args.engine}"
    entry = {
        "engine": args.engine,
        "weights": args.weights,
        "settings": args.settings,
        "dtype": args.dtype,
        "context_length": args.context_length,
    }
    graph = assistant_graph(model=slug, max_tokens=max_tokens)
    with transaction.atomic():
        workspace = Workspace.objects.filter(slug=spine.WORKSPACE).first() or workspace_create(
            slug=spine.WORKSPACE, name="Benchmark"
        )
        model = Model.objects.filter(workspace=workspace, slug=slug).first()
        if model is None:
            model = model_create(
                slug=slug, name=f"{args.engine} (benchmark)", workspace=workspace, **entry
            )
        else:
            model = model_update(model=model, **entry)
        flow = Flow.objects.filter(workspace=workspace, slug=slug).first()
        if flow is None:
            flow = flow_create(
                workspace=workspace, slug=slug, name=f"Inference {args.engine}", graph=graph
            )
            flow_publish(flow=flow)
        elif flow.published_version is None or flow.published_version.graph != graph:
            flow_publish(flow=flow, version=flow_version_save(flow=flow, graph=graph))
        # Every prompt differs anyway; the cache must never answer for the engine.
        flow_settings_change(flow=flow, response_cache=False)
        for old in ApiKey.objects.filter(
            workspace=workspace, name="bench-inference", revoked_at__isnull=True
        ):
            api_key_revoke(api_key=old)
        _, key = api_key_create(workspace=workspace, name="bench-inference")
    [llm] = [n for n in graph["nodes"] if n["id"] == LLM_NODE]
    return Prepared(key, slug, llm["config"]["system"], model_queue(model), engine_spec(model))


# --- Report -----------------------------------------------------------------------------------


COLUMNS = [
    ("path", "{:>6}", 6),
    ("c", "{:>3}", 3),
    ("requests", "{:>8}", 8),
    ("ttft p50 ms", "{:>11.1f}", 11),
    ("ttft p95 ms", "{:>11.1f}", 11),
    ("total p50 ms", "{:>12.1f}", 12),
    ("tokens/req", "{:>10.1f}", 10),
    ("agg tok/s", "{:>9.1f}", 9),
]


def figures(level: Level) -> dict[str, float]:
    s = level.samples
    return {
        "requests": len(s),
        "ttft_p50_ms": spine.percentile([x.ttft_ms for x in s], 50),
        "ttft_p95_ms": spine.percentile([x.ttft_ms for x in s], 95),
        "total_p50_ms": spine.percentile([x.total_ms for x in s], 50),
        "tokens_per_request": sum(x.tokens for x in s) / len(s),
        "agg_tok_s": level.agg_tok_s,
    }


def report(args: argparse.Namespace, max_tokens: int, direct: list[Level], studio: list[Level]):
    print(
        f"\ninference benchmark: {args.engine} engine, {args.weights}, "
        f"up to {max_tokens} output tokens per request"
    )
    print("  ".join(f"{name:>{width}}" for name, _, width in COLUMNS))
    for level in [x for pair in zip(direct, studio, strict=True) for x in pair]:
        row = [level.path, level.concurrency, *figures(level).values()]
        print("  ".join(fmt.format(value) for (_, fmt, _), value in zip(COLUMNS, row, strict=True)))
    print("\nstudio/direct aggregate throughput")
    ratios = {}
    for d, s in zip(direct, studio, strict=True):
        ratios[d.concurrency] = s.agg_tok_s / d.agg_tok_s
        print(f"  c={d.concurrency:<3} {ratios[d.concurrency]:.2f}")
    print()
    for level in [*direct, *studio]:
        f = figures(level)
        print(
            f"inference engine={args.engine} path={level.path} c={level.concurrency} "
            f"requests={f['requests']} ttft_p50_ms={f['ttft_p50_ms']:.1f} "
            f"ttft_p95_ms={f['ttft_p95_ms']:.1f} agg_tok_s={f['agg_tok_s']:.1f}"
        )
    if args.engine == "vllm":
        if 64 in ratios:
            reached = ratios[64] >= TARGET_RATIO
            print(
                f"\nvLLM at c=64: the studio reached {ratios[64]:.0%} of direct throughput "
                f"(target {TARGET_RATIO:.0%}): {'yes' if reached else 'NO'}"
            )
        else:
            print("\nvLLM: no c=64 level, so no check against the 90% target")


# --- Main -------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--engine", choices=["cpu", "vllm"], default="cpu")
    parser.add_argument(
        "--weights",
        default="bundled:smollm2-135m-instruct",
        help="a folder, a Hugging Face id or bundled:<name> (default: the bundled CPU model)",
    )
    parser.add_argument(
        "--settings",
        type=json.loads,
        default={},
        help="the engine settings as JSON, e.g. '{\"max_num_seqs\": 128}'",
    )
    parser.add_argument("--dtype", default="", help="auto, float16, bfloat16 or float32")
    parser.add_argument("--context-length", type=int, default=2048)
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(c) for c in text.split(",") if c.strip()],
        default=[1, 8, 64],
        help="comma-separated concurrency levels (default 1,8,64)",
    )
    parser.add_argument(
        "--max-tokens", type=int, help="output tokens per request (default: cpu 16, vllm 256)"
    )
    parser.add_argument(
        "--requests",
        type=int,
        help="requests per level (default: cpu max(c, 4), vllm max(4c, 32))",
    )
    args = parser.parse_args()
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("each concurrency level must be at least 1")
    if (args.requests is not None and args.requests < 1) or (
        args.max_tokens is not None and args.max_tokens < 1
    ):
        parser.error("--requests and --max-tokens must be at least 1")
    if not isinstance(args.settings, dict):
        parser.error("--settings must be a JSON object")
    return args


def run(args: argparse.Namespace) -> None:
    max_tokens = args.max_tokens or DEFAULT_MAX_TOKENS[args.engine]

    def requests_for(c: int) -> int:
        return args.requests or default_requests(args.engine, c)

    stack = InferenceStack()
    try:
        spine.start_servers(stack)
        print(f"stack      {BENCH_DIR} (logs: inference-*.log)")
        spine.migrate()
        prepared = prepare_data(args, max_tokens)
        ensure_connection_room(stack, 2 * max(args.concurrency) + 50)
        from catalog.engines import engine_class

        print(f"direct     building the {args.engine} engine for {args.weights}…")
        engine = engine_class(args.engine)(prepared.spec)
        try:
            direct = asyncio.run(
                measure_direct(engine, prepared.system, args.concurrency, requests_for, max_tokens)
            )
        finally:
            engine.close()  # vLLM: frees the GPU for the engine worker
            del engine
            gc.collect()
        threads = max(args.concurrency) + 4
        start_processes(stack, prepared.queue, threads)
        print(
            f"studio     http://127.0.0.1:{stack.port}/, engine worker on {prepared.queue!r} "
            f"with {threads} threads; the first run waits for it to load the model…"
        )
        studio = asyncio.run(
            measure_studio(
                stack,
                prepared.key,
                prepared.flow,
                args.concurrency,
                requests_for,
                READY_TIMEOUT_S[args.engine],
            )
        )
    finally:
        stack.stop()
    report(args, max_tokens, direct, studio)


def main() -> None:
    args = parse_args()
    try:
        run(args)
    except Exception as exc:  # every failure ends the benchmark with its reason and status 1
        print(f"\ninference benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
