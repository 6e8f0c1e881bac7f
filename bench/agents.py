"""The agent benchmark: the studio's own time per agent step, with a model and a tool that cost
nothing.

A scripted model server runs in a process of its own (``ScriptedServer``: a threaded HTTP server
on 127.0.0.1 speaking OpenAI's streamed chat completions): it answers at once, each request with
tool calls to the calculator until the run has made its planned number of steps, then with a
short answer. It is stateless: the run's tag and its planned steps are in the user's message, and
the steps done are the assistant messages with tool calls in the request. It times itself per
request (body read → last byte written) and adds that up per run.

The studio side is the real path of an agent run: ``agents.loop.agent_run`` with a catalog
``openai_compatible`` entry whose ``base_url`` points at the server, reached through
``catalog.inference.ainvoke`` and the worker's resident engines (``workers.resident``), a usage
row written per model call, and the real calculator tool. Two paths (``--paths``): ``loop``,
where ``emit`` keeps the events in a list and ``checkpoint`` only serialises the state, and
``node``, where the agent runs as the flow's agent node runs it on a worker: its environment from
``agents.runtime.agent_env``, its events published on a run's log in Redis (tokens coalesced, as
the executor does), its state stored on the node's result row at every checkpoint. The node
path's runs and node rows are created before each level (the benchmark plays the executor).

A step is one model call and the tool calls it asked for. Each run does ``--steps`` steps
(``--steps - 1`` with ``--calls`` calculator calls each, then the answer). At each concurrency
level C, C asyncio tasks in this one process (one event loop, as one worker process's loop would
run them) do runs back to back until ``--runs`` are done. The studio's time per step of a run is
its wall time minus what the server spent on it, divided by its steps; the report gives its p50
and p95, steps/s over the level's wall time, and at C=1 whether it meets ``TARGET_MS``.
``--profile`` then runs a level at C=1 under cProfile and prints where the time goes.

Everything runs in an isolated stack under ``var/bench-agents/`` (``STUDIO_BENCH_DIR``): its own
embedded PostgreSQL and Redis unless ``DATABASE_URL`` / ``REDIS_URL`` are set. Run it from the
repository root::

    .venv/bin/python bench/agents.py [--runs 100] [--steps 4] [--concurrency 1,16]
        [--paths loop,node] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import multiprocessing
import os
import pstats
import re
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("STUDIO_BENCH_DIR", str(REPO / "var" / "bench-agents"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import spine  # noqa: E402  (sets the bench's var dir before Django loads)

from bench.figures import percentile  # noqa: E402
from bench.load import back_to_back  # noqa: E402
from bench.openai_wire import allow_loopback_models, chunk, reply  # noqa: E402

WORKSPACE = "bench-agents"
USERNAME = "bench-agent-runner"
MODEL = "bench-agents-scripted"
WEIGHTS = "bench-scripted-model"
FLOW = "agents"
NODE = "agent_1"
# ``loop``: emit keeps the events in a list, checkpoint only serialises the state. ``node``: as
# the flow's agent node runs it on a worker: its environment (``agents.runtime.agent_env``),
# the events published on the run's log in Redis, the state stored on the node's result row.
PATHS = ("loop", "node")
EXPRESSION = "(17 + 25) * 3 - sqrt(16)"
ANSWER_PIECES = ("The result", " is 122.")
# The target: the studio's own time per step, at one agent at a time.
TARGET_MS = 20.0
WARMUP_RUNS = 3
PROFILE_LINES = 15
# The studio's own modules, as the profile names them (a coroutine counts once per resumption, and
# only the time it ran, not the time it waited).
STUDIO_CODE = r"/(agents|catalog|studio|workers)/[a-z_/]+\.py"
# The user's message carries what the stateless server needs: "run <tag>: <steps> steps, <calls>".
PLAN = re.compile(r"^run (?P<tag>\S+): (?P<steps>\d+) steps, (?P<calls>\d+) calls")


# --- The scripted model server (its own process) --------------------------------------------


def _sse(events: list[dict[str, Any]], usage: tuple[int, int]) -> bytes:
    events = [*events, {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "choices": []}]
    events[-1]["usage"] = {
        "prompt_tokens": usage[0],
        "completion_tokens": usage[1],
        "total_tokens": sum(usage),
    }
    lines = [f"data: {json.dumps(event)}\n\n" for event in events] + ["data: [DONE]\n\n"]
    return "".join(lines).encode()


def tool_calls_reply(step: int, calls: int) -> bytes:
    """``calls`` calculator calls, each one's arguments in two pieces, as servers stream them."""
    arguments = json.dumps({"expression": EXPRESSION})
    half = len(arguments) // 2
    events = [chunk(WEIGHTS, {"role": "assistant", "content": None})]
    for index in range(calls):
        function = {"name": "calculator", "arguments": arguments[:half]}
        first = {"index": index, "id": f"call_{step}_{index}", "type": "function"}
        events.append(chunk(WEIGHTS, {"tool_calls": [first | {"function": function}]}))
        rest = {"index": index, "function": {"arguments": arguments[half:]}}
        events.append(chunk(WEIGHTS, {"tool_calls": [rest]}))
    events.append(chunk(WEIGHTS, {}, "tool_calls"))
    return _sse(events, (40, 12 * calls))


def answer_reply() -> bytes:
    events = [chunk(WEIGHTS, {"role": "assistant", "content": ""})]
    events += [chunk(WEIGHTS, {"content": piece}) for piece in ANSWER_PIECES]
    events.append(chunk(WEIGHTS, {}, "stop"))
    return _sse(events, (60, len(ANSWER_PIECES)))


def reply_for(body: dict[str, Any]) -> tuple[str, bytes]:
    """The run's tag and the next reply of its plan, read from the request alone."""
    messages = body.get("messages") or []
    first = next((m for m in messages if m.get("role") == "user"), {})
    plan = PLAN.match(str(first.get("content") or ""))
    if plan is None:
        return "", answer_reply()
    done = sum(1 for m in messages if m.get("role") == "assistant" and m.get("tool_calls"))
    if done < int(plan["steps"]) - 1:
        return plan["tag"], tool_calls_reply(done + 1, int(plan["calls"]))
    return plan["tag"], answer_reply()


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spent: dict[str, float] = {}  # seconds per run tag
        self.requests = 0
        self._lock = threading.Lock()

    def add(self, tag: str, seconds: float) -> None:
        with self._lock:
            self.spent[tag] = self.spent.get(tag, 0.0) + seconds
            self.requests += 1

    def report(self) -> bytes:
        """What it spent per run and how many requests it answered, since the last report."""
        with self._lock:
            figures = {"spent": self.spent, "requests": self.requests}
            self.spent, self.requests = {}, 0
        return json.dumps(figures).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the engine reuses its connections
    wbufsize = 64 * 1024  # headers and body leave in one write
    disable_nagle_algorithm = True
    server: ScriptedServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        started = time.perf_counter()
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        tag, data = reply_for(json.loads(raw or b"{}"))
        reply(self, 200, "text/event-stream", data)
        self.wfile.flush()
        self.server.add(tag, time.perf_counter() - started)

    def do_GET(self) -> None:  # noqa: N802 - the bench reads the server's own figures
        reply(self, 200, "application/json", self.server.report())

    def log_message(self, *args: Any) -> None:
        pass


def serve(conn: Any) -> None:
    """The server process: says its port, then serves until terminated."""
    server = ScriptedServer()
    conn.send(server.server_address[1])
    server.serve_forever()


def start_server() -> tuple[multiprocessing.process.BaseProcess, str]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve, args=(child,), daemon=True)  # dies with the bench
    process.start()
    port = parent.recv()
    return process, f"http://127.0.0.1:{port}"


def server_report(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/figures", timeout=30).json()


# --- The benchmark's data -------------------------------------------------------------------


@dataclass
class Data:
    workspace_id: int
    user_id: int
    model: Any  # the catalog entry (catalog.models.Model)
    flow_id: int  # the flow whose runs hold the node path's agent nodes
    version_id: int


def prepare_data(server_url: str) -> Data:
    """The workspace, its owner and the scripted model's entry, pointed at this run's server."""
    import django

    django.setup()
    # Django's LOGGING sends INFO to the console: keep httpx's line per request out of the report.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.contrib.auth import get_user_model

    from catalog.models import Model
    from catalog.services import model_create, model_update
    from flows.demo import assistant_graph
    from flows.models import Flow
    from flows.services import flow_create, flow_publish
    from workspaces.models import Workspace
    from workspaces.services import member_add, workspace_create

    workspace = Workspace.objects.filter(slug=WORKSPACE).first() or workspace_create(
        slug=WORKSPACE, name="Agents benchmark"
    )
    user = get_user_model().objects.filter(username=USERNAME).first()
    if user is None:
        user = get_user_model().objects.create_user(USERNAME, f"{USERNAME}@example.com")
        member_add(workspace=workspace, user=user, role="owner")
    settings = {"base_url": f"{server_url}/v1", "retries": 0}
    model = Model.objects.filter(workspace=workspace, slug=MODEL).first()
    if model is None:
        model = model_create(
            slug=MODEL,
            name="Scripted (agents benchmark)",
            engine="openai_compatible",
            weights=WEIGHTS,
            settings=settings,
            workspace=workspace,
        )
    elif model.settings != settings:
        model = model_update(model=model, settings=settings)
    flow = Flow.objects.filter(workspace=workspace, slug=FLOW).first()
    if flow is None:
        flow = flow_create(
            workspace=workspace, slug=FLOW, name="Agents", graph=assistant_graph(model=MODEL)
        )
        flow = flow_publish(flow=flow)
    return Data(workspace.id, user.id, model, flow.id, flow.published_version_id)


def node_rows_create(data: Data, n: int) -> list[str]:
    """``n`` running runs, each with its agent node running: where the node path's agents
    store their state. No task is enqueued: the benchmark plays the worker."""
    from datetime import timedelta

    from django.utils import timezone

    from flows.models import NodeResult, NodeStatus, Run, RunSource, RunStatus

    deadline = timezone.now() + timedelta(hours=1)
    runs = Run.objects.bulk_create(
        Run(
            workspace_id=data.workspace_id,
            flow_id=data.flow_id,
            flow_version_id=data.version_id,
            status=RunStatus.RUNNING,
            source=RunSource.STUDIO,
            created_by_id=data.user_id,
            deadline_at=deadline,
        )
        for _ in range(n)
    )
    NodeResult.objects.bulk_create(
        NodeResult(run=run, node_id=NODE, node_type="agent", status=NodeStatus.RUNNING)
        for run in runs
    )
    return [str(run.id) for run in runs]


def node_rows_finish(run_ids: list[str]) -> None:
    from flows.models import NodeResult, NodeStatus, Run, RunStatus

    NodeResult.objects.filter(run_id__in=run_ids).update(status=NodeStatus.SUCCEEDED)
    Run.objects.filter(id__in=run_ids).update(status=RunStatus.SUCCEEDED)


def agent_spec(steps: int, calls: int) -> Any:
    from agents.spec import AgentSpec

    return AgentSpec.model_validate(
        {
            "instructions": {"text": "Compute what the user asks with the calculator."},
            "model": MODEL,
            "tools": [{"tool": "calculator"}],
            "limits": {"max_steps": steps, "max_tool_calls_per_step": max(calls, 1)},
        }
    )


# --- One run, one level ---------------------------------------------------------------------


@dataclass
class Sample:
    tag: str
    wall_s: float
    steps: int
    events: int


class Runner:
    """Runs agents on the studio's real path; one per benchmark, its engines kept warm."""

    def __init__(self, data: Data, steps: int, calls: int) -> None:
        from workers.resident import Resident

        self.data, self.steps, self.calls = data, steps, calls
        self.spec = agent_spec(steps, calls)
        self.engines = Resident()
        self.path = "loop"
        self.node_runs: list[str] = []  # the node path's prepared runs, one per agent run
        self.count = 0

    async def once(self, _client: int = 0) -> Sample:
        from agents.loop import agent_run
        from agents.state import Status

        self.count += 1
        tag = f"{os.getpid()}-{self.count}"
        events: list[tuple[str, dict]] = []
        if self.path == "node":
            env, done = await self._node_env(self.node_runs.pop(), events)
        else:
            env, done = self._loop_env(tag, events), None
        message = f"run {tag}: {self.steps} steps, {self.calls} calls. What is {EXPRESSION}?"
        started = time.perf_counter()
        outcome = await agent_run(self.spec, [{"role": "user", "content": message}], env=env)
        if done is not None:
            await done()
        wall_s = time.perf_counter() - started
        if outcome.status != Status.DONE or outcome.state.steps != self.steps:
            raise RuntimeError(f"run {tag} ended {outcome.status} ({outcome.reason})")
        return Sample(tag, wall_s, outcome.state.steps, len(events))

    def _loop_env(self, tag: str, events: list[tuple[str, dict]]) -> Any:
        from agents.loop import AgentEnv
        from agents.state import AgentState
        from catalog.router import Candidate

        async def emit(type_: str, data: dict[str, Any]) -> None:
            events.append((type_, data))

        async def checkpoint(state: AgentState) -> None:
            state.model_dump_json()

        return AgentEnv(
            workspace_id=self.data.workspace_id,
            user_id=self.data.user_id,
            run_id=tag,
            candidates=[Candidate(self.data.model, "named by the agent")],
            engine_for=self.engines.engine_for,
            emit=emit,
            checkpoint=checkpoint,
        )

    async def _node_env(self, run_id: str, events: list[tuple[str, dict]]) -> tuple[Any, Any]:
        """The agent node's environment, with its emit as the executor gives it to a node
        (``flows.runtime.node_execution``: tokens coalesced, every other event published);
        and what the executor does when the node ends (its last tokens logged)."""
        from agents.runtime import agent_env
        from flows.nodes.base import NodeContext
        from studio import events as run_events

        tokens = run_events.TokenBuffer(run_id, NODE)

        async def emit(type_: str, data: dict[str, Any]) -> None:
            events.append((type_, data))
            if type_ == run_events.TOKEN and data.keys() == {"text"}:
                await tokens.add(data["text"])
                return
            await tokens.flush()
            await run_events.publish(run_id, type_, NODE, data)

        ctx = NodeContext(
            run_id=run_id,
            node_id=NODE,
            workspace_id=self.data.workspace_id,
            emit=emit,
            engine_for=self.engines.engine_for,
            flow_id=self.data.flow_id,
            flow_slug=FLOW,
            user_id=self.data.user_id,
        )
        return await agent_env(ctx, self.spec), tokens.flush


@dataclass
class Level:
    path: str
    concurrency: int
    samples: list[Sample]
    wall_s: float
    server_s: dict[str, float]  # what the server spent per run tag
    requests: int  # model calls the server answered

    def step_ms(self) -> list[float]:
        """The studio's own time per step of each run."""
        return [1000 * (s.wall_s - self.server_s.get(s.tag, 0.0)) / s.steps for s in self.samples]

    @property
    def steps(self) -> int:
        return sum(s.steps for s in self.samples)

    def server_ms_per_step(self) -> float:
        return 1000 * sum(self.server_s.values()) / max(self.steps, 1)


async def run_level(runner: Runner, url: str, runs: int, concurrency: int, path: str) -> Level:
    from asgiref.sync import sync_to_async

    runner.path = path
    if path == "node":
        runner.node_runs = await sync_to_async(node_rows_create)(runner.data, runs + WARMUP_RUNS)
    prepared = list(runner.node_runs)
    await back_to_back(list(range(WARMUP_RUNS)), runner.once, WARMUP_RUNS)
    await asyncio.to_thread(server_report, url)  # the warm-up's figures are dropped
    samples, wall_s = await back_to_back(list(range(concurrency)), runner.once, runs)
    figures = await asyncio.to_thread(server_report, url)
    if prepared:
        await sync_to_async(node_rows_finish)(prepared)
    return Level(path, concurrency, samples, wall_s, figures["spent"], figures["requests"])


async def profile_level(runner: Runner, url: str, runs: int, path: str) -> None:
    """One level at C=1 under cProfile (this thread only: the database calls made in
    ``sync_to_async``'s thread show as time waiting for it)."""
    profiler = cProfile.Profile()
    profiler.enable()
    level = await run_level(runner, url, runs, 1, path)
    profiler.disable()
    ms = percentile(level.step_ms(), 50)
    print(
        f"\nprofile: path={path} c=1, {level.steps} steps, ms_per_step_p50={ms:.1f} under cProfile"
    )
    stats = pstats.Stats(profiler, stream=sys.stdout)
    print(f"top {PROFILE_LINES} of the studio's own functions by cumulative time")
    stats.sort_stats("cumulative").print_stats(STUDIO_CODE, PROFILE_LINES)
    print(f"top {PROFILE_LINES} of every function by own time (epoll: waiting)")
    stats.sort_stats("tottime").print_stats(PROFILE_LINES)


async def measure(runner: Runner, url: str, args: argparse.Namespace) -> None:
    """Every level, then the profile, in one event loop (the engines' connections live in it)."""
    levels = []
    for path in args.paths:
        for concurrency in args.concurrency:
            levels.append(await run_level(runner, url, args.runs, concurrency, path))
            print(f"measured   path={path} c={concurrency}", flush=True)
    report(levels, args.steps, args.calls)
    if args.profile:
        for path in args.paths:
            await profile_level(runner, url, args.runs, path)


# --- Report ---------------------------------------------------------------------------------


def report(levels: list[Level], steps: int, calls: int) -> None:
    print(
        f"\nagents benchmark: {steps} steps per run ({steps - 1} with {calls} calculator "
        f"call(s), then the answer); C asyncio tasks in one process; {os.cpu_count()} cores"
    )
    for level in levels:
        ms = level.step_ms()
        print(
            f"agents c={level.concurrency} path={level.path} runs={len(level.samples)} "
            f"steps={level.steps} "
            f"model_calls={level.requests} ms_per_step_p50={percentile(ms, 50):.1f} "
            f"p95={percentile(ms, 95):.1f} steps_s={level.steps / level.wall_s:.1f} "
            f"server_ms_per_step={level.server_ms_per_step():.2f}"
        )
    for level in levels:
        if level.concurrency == 1:
            p50 = percentile(level.step_ms(), 50)
            verdict = "met" if p50 <= TARGET_MS else "NOT met"
            print(f"target c=1 path={level.path}: ms_per_step_p50 <= {TARGET_MS:g}: {verdict}")


# --- Main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="agent runs per level")
    parser.add_argument("--steps", type=int, default=4, help="model calls per run (2 to 50)")
    parser.add_argument("--calls", type=int, default=1, help="tool calls per step (1 to 16)")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(c) for c in text.split(",") if c.strip()],
        default=[1, 16],
        help="comma-separated numbers of concurrent agents (default 1,16)",
    )
    parser.add_argument(
        "--paths",
        type=lambda text: [p for p in text.split(",") if p.strip()],
        default=list(PATHS),
        help="comma-separated: loop (in-memory events and state), node (the agent node's)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="then profile a level at c=1 (cProfile)"
    )
    args = parser.parse_args()
    if args.runs < 1 or not args.concurrency or min(args.concurrency) < 1:
        parser.error("--runs and each concurrency level must be at least 1")
    if not args.paths or set(args.paths) - set(PATHS):
        parser.error(f"--paths: some of {', '.join(PATHS)}")
    if not 2 <= args.steps <= 50 or not 1 <= args.calls <= 16:
        parser.error("--steps must be 2 to 50 and --calls 1 to 16")
    return args


def main() -> None:
    args = parse_args()
    allow_loopback_models()
    server, url = start_server()
    stack = spine.Stack()
    try:
        spine.start_servers(stack)
        print(f"stack      {spine.BENCH_DIR}; model server {url} (pid {server.pid})")
        spine.migrate()
        runner = Runner(prepare_data(url), args.steps, args.calls)
        asyncio.run(measure(runner, url, args))
    finally:
        stack.stop()
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
