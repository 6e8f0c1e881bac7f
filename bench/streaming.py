"""The streaming benchmark: how many run-event WebSocket streams one ASGI process holds.

One daphne serves the studio, started as ``make up`` starts it (``studio.launch.web_command``),
a fresh one for each level. For each level N, the script stores N running runs of a published
flow, opens N WebSockets on ``/ws/runs/<id>/?after=0&batch=1`` (``flows.consumers.RunConsumer``,
as the chat page opens it: the events ready together come in one message; ``--frames single``
asks for one event per message, as the flow editor does) with the session cookie of a
signed-in member, and then plays the worker: it appends ``token`` events to every run's log
through the studio's own append script (``studio.events``) at ``--rate`` tokens/s per stream
(50 by default), each carrying the wall time it was emitted, then ends every run with
``run.finished``, after which the server closes the sockets.

The clients (one asyncio process, aiohttp) and the emitter (one process, a pipelined Redis
client) run apart from the server, so that the server's process is measured alone: its RSS
before and after the sockets connect (memory per stream = the difference / N) and its CPU
while the tokens flow, and that CPU per token delivered (``srv µs/tok``: the figure the other
work on a shared machine moves least). The clients check every run's sequence numbers:
``gaps`` counts events skipped (lost), ``late`` events not received within ``--drain`` seconds
after the emitter stopped (the server is behind). Latency is emit → received, in the client,
per token event.

Everything runs in an isolated stack under ``var/bench-streaming/`` (``STUDIO_BENCH_DIR``): its
own embedded PostgreSQL and Redis unless ``DATABASE_URL`` / ``REDIS_URL`` are set. The server's
log is ``web.log`` there. Run it from the repository root::

    .venv/bin/python bench/streaming.py [--streams 100,500,1000] [--seconds 10] [--frames single]
        [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("STUDIO_BENCH_DIR", str(REPO / "var" / "bench-streaming"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402
import spine  # noqa: E402  (sets the bench's var dir before Django loads)

from bench.figures import percentile  # noqa: E402
from studio import launch  # noqa: E402

WORKSPACE = "bench-streaming"
USERNAME = "bench-streamer"
MODEL = "bench-streaming-echo"
FLOW = "streaming"
NODE = "llm_1"
TOKEN_TEXT = "tok "
EMIT_GROUPS = 10  # the streams are split in groups emitting in turn, spread over each interval
CONNECT_AT_ONCE = 50  # handshakes in flight (daphne's listen backlog is Twisted's 50)
SETTLE_S = 1.0  # after the last socket connected, before the RSS is read


# --- The benchmark's data -------------------------------------------------------------------


@dataclass
class Data:
    flow_id: int
    version_id: int
    workspace_id: int
    user_id: int
    cookie: str  # the session cookie of the signed-in bench user


def prepare_data() -> Data:
    """The workspace, its owner (signed in: a real session row) and a published flow."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from catalog.models import Model
    from catalog.services import model_create
    from flows.demo import assistant_graph
    from flows.models import Flow
    from flows.services import flow_create, flow_publish
    from workspaces.models import Workspace
    from workspaces.services import member_add, workspace_create

    workspace = Workspace.objects.filter(slug=WORKSPACE).first() or workspace_create(
        slug=WORKSPACE, name="Streaming benchmark"
    )
    user = get_user_model().objects.filter(username=USERNAME).first()
    if user is None:
        user = get_user_model().objects.create_user(USERNAME, f"{USERNAME}@example.com")
        member_add(workspace=workspace, user=user, role="owner")
    if not Model.objects.filter(workspace=workspace, slug=MODEL).exists():
        model_create(slug=MODEL, name="Echo (streaming)", engine="echo", workspace=workspace)
    flow = Flow.objects.filter(workspace=workspace, slug=FLOW).first()
    if flow is None:
        flow = flow_create(
            workspace=workspace, slug=FLOW, name="Streaming", graph=assistant_graph(model=MODEL)
        )
        flow = flow_publish(flow=flow)
    browser = Client()
    browser.force_login(user)
    return Data(
        flow_id=flow.id,
        version_id=flow.published_version_id,
        workspace_id=workspace.id,
        user_id=user.id,
        cookie=browser.cookies[settings.SESSION_COOKIE_NAME].value,
    )


def runs_create(data: Data, n: int) -> list[str]:
    """``n`` running runs the bench user may view. No task is enqueued: the bench is the worker."""
    from datetime import timedelta

    from django.utils import timezone

    from flows.models import Run, RunSource, RunStatus

    deadline = timezone.now() + timedelta(hours=1)  # never reaped as overdue while streaming
    runs = Run.objects.bulk_create(
        Run(
            workspace_id=data.workspace_id,
            flow_id=data.flow_id,
            flow_version_id=data.version_id,
            status=RunStatus.RUNNING,
            source=RunSource.CHAT,
            created_by_id=data.user_id,
            deadline_at=deadline,
        )
        for _ in range(n)
    )
    return [str(run.id) for run in runs]


def runs_finish(run_ids: list[str]) -> None:
    from flows.models import Run, RunStatus

    Run.objects.filter(id__in=run_ids).update(status=RunStatus.SUCCEEDED)


def start_web(stack: spine.Stack) -> None:
    stack.port = launch.free_port()
    with open(spine.BENCH_DIR / "web.log", "a") as web_log:
        stack.web = launch.start(
            launch.web_command(stack.port), stdout=web_log, stderr=subprocess.STDOUT
        )
    launch.wait_for_port(stack.port, process=stack.web)


# --- The emitter (the workers) --------------------------------------------------------------


def emitter_main(conn, run_ids: list[str], rate: float, seconds: float) -> None:
    """Wait for "go", then append ``rate`` token events/s to each run for ``seconds``, then one
    ``run.finished`` each. Sends back what it emitted and how far behind schedule it fell.

    ``events.publish_many_sync`` pipelines one run's events; here one round trip carries one
    token for each of many runs, as many workers' appends arrive together. Same append script,
    keys and fields as ``events.publish``: the readers cannot tell them apart. Each event's
    ``data.t`` is the wall time it was sent.
    """
    import django

    django.setup()
    from studio import events, redis_client

    client = redis_client.client()
    client.ping()
    conn.send("ready")
    conn.recv()
    groups = [run_ids[i :: min(EMIT_GROUPS, len(run_ids))] for i in range(EMIT_GROUPS)]
    groups = [group for group in groups if group]
    slot = 1 / rate / len(groups)
    slots = round(seconds * rate) * len(groups)  # each stream gets seconds × rate tokens
    started = time.perf_counter()
    started_wall = time.time()
    behind = 0.0
    tokens = 0
    for k in range(slots):
        delay = started + k * slot - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            behind = max(behind, -delay)
        pipe = client.pipeline(transaction=False)
        data = {"text": TOKEN_TEXT, "t": time.time()}
        for run_id in groups[k % len(groups)]:
            pipe.eval(
                events._APPEND, 2, *events._keys(run_id), *events._args(events.TOKEN, NODE, data)
            )
        pipe.execute()
        tokens += len(groups[k % len(groups)])
    emitting_s = time.perf_counter() - started
    pipe = client.pipeline(transaction=False)
    for run_id in run_ids:
        pipe.eval(
            events._APPEND, 2, *events._keys(run_id), *events._args(events.RUN_FINISHED, None, {})
        )
    pipe.execute()
    conn.send(
        {
            "tokens": tokens,
            "events": tokens + len(run_ids),
            "seconds": emitting_s,
            "start": started_wall,
            "end": started_wall + emitting_s,
            "behind_ms": behind * 1000,
        }
    )


# --- The clients (the browsers) -------------------------------------------------------------


@dataclass
class Stream:
    last_seq: int = 0
    events: int = 0
    tokens: int = 0
    gaps: int = 0  # sequence numbers skipped
    repeats: int = 0  # sequence numbers seen again or out of order
    finished: bool = False  # the run.finished event arrived
    error: str = ""
    latencies: list[float] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # wall time of each token

    def take(self, event: dict, now: float) -> None:
        seq = event["seq"]
        if seq <= self.last_seq:
            self.repeats += 1
            return
        self.gaps += seq - self.last_seq - 1
        self.last_seq = seq
        self.events += 1
        if event["type"] == "token":
            self.tokens += 1
            self.latencies.append((now - event["data"]["t"]) * 1000)
            self.received_at.append(now)
        elif event["type"] in ("run.finished", "run.failed"):
            self.finished = True


async def _follow(session, url: str, headers: dict, stream: Stream, connected, limit) -> None:
    import aiohttp

    try:
        async with limit:
            ws = await session.ws_connect(url, headers=headers, autoping=True, max_msg_size=0)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        stream.error = f"connect: {type(exc).__name__}: {exc}"[:200]
        connected()
        return
    connected()
    async with ws:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                now = time.time()
                data = json.loads(message.data)
                for event in data if isinstance(data, list) else [data]:
                    stream.take(event, now)
            elif message.type == aiohttp.WSMsgType.ERROR:
                stream.error = f"socket: {ws.exception()}"[:200]
    if not stream.finished and not stream.error:
        stream.error = f"closed with {ws.close_code} before run.finished"


async def _clients(
    conn, port: int, cookie: str, run_ids: list[str], query: str
) -> tuple[list[Stream], dict]:
    import aiohttp

    headers = {"Cookie": f"sessionid={cookie}", "Origin": f"http://127.0.0.1:{port}"}
    streams = [Stream() for _ in run_ids]
    pending = len(run_ids)
    all_connected = asyncio.Event()
    started = time.perf_counter()

    def connected() -> None:
        nonlocal pending
        pending -= 1
        if not pending:
            all_connected.set()

    limit = asyncio.Semaphore(CONNECT_AT_ONCE)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, connect=60, sock_connect=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [
            asyncio.create_task(
                _follow(
                    session,
                    f"ws://127.0.0.1:{port}/ws/runs/{run_id}/?after=0{query}",
                    headers,
                    stream,
                    connected,
                    limit,
                )
            )
            for run_id, stream in zip(run_ids, streams, strict=True)
        ]
        await all_connected.wait()
        failed = sum(1 for s in streams if s.error)
        conn.send(
            {
                "connected": len(run_ids) - failed,
                "failed": failed,
                "connect_s": time.perf_counter() - started,
            }
        )
        # The parent says how long to wait once the emitter is done: then what is open is late.
        window = await asyncio.to_thread(conn.recv)
        _, still_open = await asyncio.wait(tasks, timeout=window["drain_s"])
        for task in still_open:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for stream in streams:
        if not stream.finished and not stream.error:
            got = f"{stream.events} events" if stream.events else "no event"
            stream.error = f"still open when the drain ended, {got} received"
    return streams, window


def clients_main(conn, port: int, cookie: str, run_ids: list[str], query: str) -> None:
    """Connect every stream, report, follow them until each ends or the parent's drain time
    passes, then send back the figures of all streams together."""
    streams, window = asyncio.run(_clients(conn, port, cookie, run_ids, query))
    latencies = [x for s in streams for x in s.latencies]
    errors = Counter(s.error for s in streams if s.error)
    conn.send(
        {
            "events": sum(s.events for s in streams),
            "tokens": sum(s.tokens for s in streams),
            # Tokens received while the emitter was emitting: the rate the server kept up with.
            "tokens_in_window": sum(
                1 for s in streams for at in s.received_at if window["start"] <= at <= window["end"]
            ),
            "gaps": sum(s.gaps for s in streams),
            "repeats": sum(s.repeats for s in streams),
            "unfinished": sum(1 for s in streams if not s.finished),
            "errors": errors.most_common(5),  # (what happened, to how many streams)
            "p50_ms": percentile(latencies, 50) if latencies else float("nan"),
            "p95_ms": percentile(latencies, 95) if latencies else float("nan"),
            "p99_ms": percentile(latencies, 99) if latencies else float("nan"),
            "max_ms": max(latencies, default=float("nan")),
        }
    )


# --- One level ------------------------------------------------------------------------------


@dataclass
class Level:
    streams: int
    connect: dict
    emitted: dict
    received: dict
    rss_before: int
    rss_after: int
    wall_s: float  # from "go" to the last stream's end (or the drain's)
    cpu: dict[str, float]  # process → % of one core over wall_s
    redis_clients: int


def _cpu_seconds(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return times.user + times.system


def _machine_busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def redis_clients() -> int:
    from studio import redis_client

    return int(redis_client.client().info("clients")["connected_clients"])


def run_level(
    stack: spine.Stack,
    data: Data,
    n: int,
    rate: float,
    seconds: float,
    drain_s: float,
    batched: bool,
) -> Level:
    run_ids = runs_create(data, n)
    context = multiprocessing.get_context("spawn")
    emitter_conn, child = context.Pipe()
    emitter = context.Process(
        target=emitter_main, args=(child, run_ids, rate, seconds), daemon=True
    )
    emitter.start()
    assert emitter_conn.recv() == "ready"
    server = psutil.Process(stack.web.pid)
    rss_before = server.memory_info().rss
    clients_conn, child = context.Pipe()
    # Daemons: if this script dies, they do too.
    clients = context.Process(
        target=clients_main,
        args=(child, stack.port, data.cookie, run_ids, "&batch=1" if batched else ""),
        daemon=True,
    )
    clients.start()
    connect = clients_conn.recv()
    time.sleep(SETTLE_S)
    rss_after = server.memory_info().rss
    connections = redis_clients()
    watched = {
        "server": server,
        "clients": psutil.Process(clients.pid),
        "emitter": psutil.Process(emitter.pid),
        "redis": psutil.Process(stack.redis.pid) if stack.redis else None,
    }
    cpu_before = {name: _cpu_seconds(p) for name, p in watched.items()}
    machine_before = _machine_busy_seconds()
    started = time.perf_counter()
    emitter_conn.send("go")
    emitted = emitter_conn.recv()
    clients_conn.send({"drain_s": drain_s, "start": emitted["start"], "end": emitted["end"]})
    cpu_after = {name: _cpu_seconds(p) for name, p in watched.items()}
    machine_s = _machine_busy_seconds() - machine_before
    received = clients_conn.recv()
    wall_s = time.perf_counter() - started
    emitter.join()
    clients.join()
    runs_finish(run_ids)
    spine.check_alive(stack)
    cpu = {
        name: 100 * (cpu_after[name] - cpu_before[name]) / emitted["seconds"]
        for name in watched
        if watched[name] is not None
    }
    # Whatever else the machine ran meanwhile (other people's work on shared cores).
    ours = sum(cpu_after[name] - cpu_before[name] for name in watched)
    cpu["others"] = 100 * (machine_s - ours) / emitted["seconds"]
    return Level(n, connect, emitted, received, rss_before, rss_after, wall_s, cpu, connections)


# --- Report ---------------------------------------------------------------------------------


def figures(level: Level) -> dict:
    e, r, c = level.emitted, level.received, level.connect
    return {
        "streams": level.streams,
        "connected": c["connected"],
        "conn_failed": c["failed"],
        "connect_s": c["connect_s"],
        "emitted_tok_s": e["tokens"] / e["seconds"],
        "delivered_tok_s": r["tokens_in_window"] / e["seconds"],
        "p50_ms": r["p50_ms"],
        "p95_ms": r["p95_ms"],
        "p99_ms": r["p99_ms"],
        "max_ms": r["max_ms"],
        "gaps": r["gaps"],
        "repeats": r["repeats"],
        # Not received before the drain ended (whether lost or only late: ``gaps`` says lost).
        "late": e["events"] - r["events"],
        "rss_before_mb": level.rss_before / 2**20,
        "rss_after_mb": level.rss_after / 2**20,
        "kb_per_stream": (level.rss_after - level.rss_before) / 1024 / level.streams,
        "server_cpu": level.cpu.get("server", float("nan")),
        # The server's CPU per token delivered while the emitter ran: the figure least moved by
        # whatever else the machine runs (the latencies are not).
        "server_us_per_token": 1e4
        * level.cpu.get("server", float("nan"))
        / (r["tokens_in_window"] / e["seconds"] or float("nan")),
        "clients_cpu": level.cpu.get("clients", float("nan")),
        "emitter_cpu": level.cpu.get("emitter", float("nan")),
        "redis_cpu": level.cpu.get("redis", float("nan")),
        "others_cpu": level.cpu["others"],
        "redis_clients": level.redis_clients,
    }


COLUMNS = [  # (heading, format spec): each column is as wide as its heading
    ("streams", "d"),
    ("connected", "d"),
    ("conn fail", "d"),
    ("connect s", ".1f"),
    ("emit tok/s", ".0f"),
    ("recv tok/s", ".0f"),
    ("p50 ms", ".1f"),
    ("p95 ms", ".1f"),
    ("p99 ms", ".1f"),
    ("max ms", ".0f"),
    ("gaps", "d"),
    ("repeats", "d"),
    ("late", "d"),
    ("RSS0 MB", ".0f"),
    ("RSS1 MB", ".0f"),
    ("KB/stream", ".0f"),
    ("srv CPU%", ".0f"),
    ("srv µs/tok", ".0f"),
    ("cli CPU%", ".0f"),
    ("emit CPU%", ".0f"),
    ("redis CPU%", ".0f"),
    ("other CPU%", ".0f"),
    ("redis conns", "d"),
]


def report(levels: list[Level], rate: float, seconds: float, drain_s: float, frames: str) -> None:
    cores = os.cpu_count()
    print(
        f"\nstreaming benchmark: one daphne, {rate:g} tokens/s per stream for {seconds:g} s, "
        f"{frames} frames, {cores} cores shared by the server, the clients, the emitter and Redis"
    )
    print("  ".join(f"{name:>{max(len(name), 7)}}" for name, _ in COLUMNS))
    for level in levels:
        row = figures(level).values()
        cells = zip(COLUMNS, row, strict=True)
        print("  ".join(f"{value:>{max(len(name), 7)}{spec}}" for (name, spec), value in cells))
    print(
        f"\nlatency: emit (wall time in the event) → JSON parsed in the client. late: events not "
        f"received {drain_s:g} s after the emitter stopped; gaps: sequence numbers skipped. "
        "CPU%: of one core, while the emitter ran; other: every other process on the machine."
    )
    for level in levels:
        for error, count in level.received["errors"]:
            print(f"  n={level.streams}: {count} streams: {error}")
    print()
    for level in levels:
        f = figures(level)
        print(
            f"streaming n={f['streams']} connected={f['connected']} conn_failed={f['conn_failed']} "
            f"emitted={level.emitted['events']} received={level.received['events']} "
            f"gaps={f['gaps']} repeats={f['repeats']} late={f['late']} "
            f"p50_ms={f['p50_ms']:.1f} p95_ms={f['p95_ms']:.1f} p99_ms={f['p99_ms']:.1f} "
            f"recv_tok_s={f['delivered_tok_s']:.0f} kb_per_stream={f['kb_per_stream']:.0f} "
            f"server_cpu={f['server_cpu']:.0f} server_us_per_token={f['server_us_per_token']:.0f}"
        )


# --- Main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--streams",
        type=lambda text: [int(n) for n in text.split(",") if n.strip()],
        default=[100, 500, 1000],
        help="comma-separated numbers of concurrent streams (default 100,500,1000)",
    )
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s per stream")
    parser.add_argument("--seconds", type=float, default=10.0, help="emitting time per level")
    parser.add_argument(
        "--drain", type=float, default=20.0, help="seconds to wait for late events after that"
    )
    parser.add_argument(
        "--frames",
        choices=["batched", "single"],
        default="batched",
        help="batched: the sockets ask for the events ready together in one message, as the "
        "chat page does (default); single: one event per message, as the flow editor reads",
    )
    parser.add_argument(
        "--redis-maxclients",
        type=int,
        default=0,
        help="raise the embedded Redis's client limit (1,000) to this before measuring",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 5 streams for 2 s, 30 s to drain (unless given)",
    )
    args = parser.parse_args()
    if args.quick:
        if "--streams" not in sys.argv:
            args.streams = [5]
        if "--seconds" not in sys.argv:
            args.seconds = 2.0
        if "--drain" not in sys.argv:
            args.drain = 30.0
    if not args.streams or min(args.streams) < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("--streams, --rate and --seconds must be positive")
    return args


def main() -> None:
    args = parse_args()
    stack = spine.Stack()
    levels = []
    try:
        spine.start_servers(stack)
        print(f"stack      {spine.BENCH_DIR} (log: web.log)")
        (spine.BENCH_DIR / "web.log").write_text("")  # the levels' servers append to it
        spine.migrate()
        data = prepare_data()
        if args.redis_maxclients:
            from studio import redis_client

            redis_client.client().config_set("maxclients", args.redis_maxclients)
        for n in args.streams:
            # A fresh server per level: its RSS before is a bare process's, whatever came before.
            start_web(stack)
            print(f"serving    http://127.0.0.1:{stack.port}/ (daphne, pid {stack.web.pid})")
            levels.append(
                run_level(
                    stack, data, n, args.rate, args.seconds, args.drain, args.frames == "batched"
                )
            )
            launch.stop(stack.web)
            print(f"measured   {n} streams", flush=True)
    finally:
        stack.stop()
    report(levels, args.rate, args.seconds, args.drain, args.frames)


if __name__ == "__main__":
    main()
