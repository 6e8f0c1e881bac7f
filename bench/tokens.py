"""The token benchmark: how many tokens/s the studio carries from engines to clients.

N echo-engine streams produce as fast as they can in one process (as on one worker's resident
loop), through the run-event log (``studio.events``: Redis streams), while N readers in this
process follow them as the web server does (``events.follow`` → ``studio.sse.sse_frames``, the
frames every SSE client gets; the WebSocket and OpenAI streams send one message per entry too).

Two emitters, run in turn (interleaved, so both see the same machine):

- ``per-token``: one ``events.publish`` per token (the emitter before token batching);
- ``batched``: ``events.TokenBuffer`` (what the LLM node and the playground use now).

For each it prints the tokens/s carried (all streams together: tokens received by the readers /
time from the first ``run.started`` to the last stream's end), the log entries written, and the
first token's latency (reader got it − its stream's ``run.started``; p50, p95), then the cost of
one event on each leg alone (XADD, reading it back, SSE framing).

Everything runs against its own embedded Redis under ``var/bench-tokens/`` unless ``REDIS_URL``
is set. Run it from the repository root::

    .venv/bin/python bench/tokens.py [--streams 64] [--tokens 512] [--rounds 2] [--delay-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "var" / "bench-tokens"

os.environ.setdefault("STUDIO_VAR_DIR", str(BENCH_DIR))
# The benchmark touches no database: a URL that is never used keeps the settings from starting
# the embedded PostgreSQL.
os.environ.setdefault("DATABASE_URL", "postgres://unused@127.0.0.1:1/unused")
os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
sys.path.insert(0, str(REPO))

from bench.figures import percentile  # noqa: E402

MODES = ("per-token", "batched")
START_DELAY_S = 0.5  # the readers are all following before the first stream starts


# --- The producer (a worker's loop) ---------------------------------------------------------


async def _produce_one(
    stream_id: str, prompt: str, tokens: int, mode: str, delay_ms: float
) -> None:
    from catalog.engines.base import EngineSpec, GenerationRequest
    from catalog.engines.echo import EchoEngine
    from studio import events

    engine = EchoEngine(EngineSpec(engine="echo", weights="", settings={"delay_ms": delay_ms}))
    request = GenerationRequest(messages=[{"role": "user", "content": prompt}], max_tokens=tokens)
    await events.publish(stream_id, events.RUN_STARTED, "llm_1", {})
    if mode == "batched":
        buffer = events.TokenBuffer(stream_id, "llm_1")
        emit = buffer.add
    else:

        async def emit(text: str) -> None:
            await events.publish(stream_id, events.TOKEN, "llm_1", {"text": text})

    async for chunk in engine.stream(request):
        if chunk.text:
            await emit(chunk.text)
    if mode == "batched":
        await buffer.flush()
    await events.publish(stream_id, events.RUN_FINISHED, "llm_1", {})


def _producer(
    stream_ids: list[str], tokens: int, mode: str, delay_ms: float, start_at: float
) -> None:
    import django

    django.setup()
    import catalog.engines.echo  # noqa: F401  (imported before the clock starts)

    prompt = " ".join(f"w{i}" for i in range(tokens))  # the echo engine: one word, one token

    async def main() -> None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(*(_produce_one(s, prompt, tokens, mode, delay_ms) for s in stream_ids))

    asyncio.run(main())


# --- The readers (the web server) -----------------------------------------------------------


@dataclass
class Read:
    started: float  # the stream's run.started (producer clock = this machine's clock)
    first_token: float  # when this reader framed the first token
    ended: float
    tokens: int
    entries: int


async def _read_one(stream_id: str) -> Read:
    from studio import events
    from studio.sse import sse_frames

    seen: dict = {"tokens": 0, "entries": 0, "started": None, "first": None}

    async def tap():
        async for event in events.follow(stream_id, 0):
            if event is not None:
                seen["entries"] += 1
                if event["type"] == events.RUN_STARTED:
                    seen["started"] = event["ts"]
                elif event["type"] == events.TOKEN:
                    seen["tokens"] += len(event["data"]["text"].split())
            yield event

    async for frame in sse_frames(tap()):
        if seen["first"] is None and frame.startswith("id:") and "event: token" in frame:
            seen["first"] = time.time()
    return Read(seen["started"], seen["first"], time.time(), seen["tokens"], seen["entries"])


@dataclass
class Round:
    mode: str
    tok_s: float
    entries: int
    tokens: int
    ttft_ms: list[float]


async def _read_all(stream_ids: list[str]) -> list[Read]:
    return await asyncio.gather(*(_read_one(s) for s in stream_ids))


def one_round(streams: int, tokens: int, mode: str, delay_ms: float) -> Round:
    stream_ids = [f"bench-tokens-{uuid.uuid4()}" for _ in range(streams)]
    start_at = time.time() + START_DELAY_S
    process = multiprocessing.get_context("fork").Process(
        target=_producer, args=(stream_ids, tokens, mode, delay_ms, start_at)
    )
    process.start()
    reads = asyncio.run(_read_all(stream_ids))
    process.join()
    if process.exitcode:
        raise RuntimeError(f"the producer exited with {process.exitcode}")
    carried = sum(r.tokens for r in reads)
    if carried != streams * tokens:
        raise RuntimeError(f"expected {streams * tokens} tokens, readers got {carried}")
    wall = max(r.ended for r in reads) - min(r.started for r in reads)
    return Round(
        mode=mode,
        tok_s=carried / wall,
        entries=sum(r.entries for r in reads),
        tokens=carried,
        ttft_ms=[(r.first_token - r.started) * 1000 for r in reads],
    )


# --- Each leg alone -------------------------------------------------------------------------


def per_event_costs(count: int = 2000) -> dict[str, float]:
    """µs per event: an XADD (``events.publish``), reading it back (``events.follow``, batched
    as followers read), framing it as SSE."""
    from studio import events
    from studio.sse import sse_frames

    stream_id = f"bench-tokens-{uuid.uuid4()}"

    async def measure() -> dict[str, float]:
        started = time.perf_counter()
        for _ in range(count):
            await events.publish(stream_id, events.TOKEN, "llm_1", {"text": " word"})
        xadd = time.perf_counter() - started
        await events.publish(stream_id, events.RUN_FINISHED, "llm_1", {})
        started = time.perf_counter()
        logged = [e async for e in events.follow(stream_id, 0)]
        read = time.perf_counter() - started

        async def replayed():
            for event in logged:
                yield event

        started = time.perf_counter()
        async for _ in sse_frames(replayed()):
            pass
        framed = time.perf_counter() - started
        return {
            "xadd_us": xadd / count * 1e6,
            "read_us": read / count * 1e6,
            "sse_us": framed / count * 1e6,
        }

    return asyncio.run(measure())


# --- Main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--streams", type=int, default=64, help="concurrent streams")
    parser.add_argument("--tokens", type=int, default=512, help="tokens per stream")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each emitter")
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help="the echo engine's pause before each token (0: as fast as it can)",
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}"
    )
    args = parser.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    if set(args.modes) - set(MODES) or min(args.streams, args.tokens, args.rounds) < 1:
        parser.error("--streams, --tokens and --rounds must be at least 1; modes: " + str(MODES))
    return args


def main() -> None:
    args = parse_args()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    from studio import embedded, launch

    redis = None
    if not os.environ.get("REDIS_URL"):
        redis = embedded.redis_start()
        os.environ["REDIS_URL"] = embedded.embedded_redis_url()
    import django

    django.setup()
    try:
        rounds = [
            one_round(args.streams, args.tokens, mode, args.delay_ms)
            for _ in range(args.rounds)
            for mode in args.modes
        ]
        costs = per_event_costs()
    finally:
        launch.stop(redis)
    print(
        f"\ntoken benchmark: {args.streams} echo streams x {args.tokens} tokens "
        f"({args.delay_ms:g} ms apart), "
        "event log → follow → SSE frames"
    )
    print(
        f"{'emitter':>10}  {'tok/s':>8}  {'entries':>8}  {'ttft p50 ms':>11}  {'ttft p95 ms':>11}"
    )
    for r in rounds:
        print(
            f"{r.mode:>10}  {r.tok_s:>8.0f}  {r.entries:>8}  "
            f"{percentile(r.ttft_ms, 50):>11.1f}  {percentile(r.ttft_ms, 95):>11.1f}"
        )
    print()
    for mode in args.modes:
        mine = [r for r in rounds if r.mode == mode]
        print(
            f"tokens mode={mode} tok_s={statistics.median(r.tok_s for r in mine):.0f} "
            f"entries={mine[-1].entries} "
            f"ttft_p50_ms={statistics.median(percentile(r.ttft_ms, 50) for r in mine):.1f} "
            f"ttft_p95_ms={statistics.median(percentile(r.ttft_ms, 95) for r in mine):.1f}"
        )
    print(
        "per event: "
        + " ".join(f"{name}={value:.1f}" for name, value in costs.items())
        + " (µs, one at a time)"
    )


if __name__ == "__main__":
    main()
