"""The cost of tracing per run: the same flows run with OpenTelemetry off, then on.

``bench/flows.py``'s graphs (``chain``: input → LLM → output; ``branches``: 50 nodes, 33 run)
on the echo model, through the real path (run row → Celery → executor → ``execute_node`` →
events), in ``bench/spine.py``'s isolated stack. First the worker runs with no OTLP endpoint
(the studio's default: tracing off); then it is restarted with ``STUDIO_OTLP_ENDPOINT`` naming a
local OTLP/HTTP receiver in this script, which counts the spans it is sent. For each graph and
each mode, ``--runs`` runs one after another; the table gives the studio's overhead per run (run
time less the time inside the model, as ``bench/flows.py`` reckons it), p50 and p95, and the
difference of the medians: what tracing costs a run.

    .venv/bin/python bench/tracing.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import spine  # noqa: E402  (sets the bench's var dir before Django loads)

from bench import flows as flow_bench  # noqa: E402
from bench.figures import percentile  # noqa: E402

# bench/flows.py puts bench/ first on the path again: the studio's ``flows`` app must win.
sys.path.insert(0, str(spine.REPO))


class Receiver:
    """An OTLP/HTTP endpoint that acknowledges every export and counts its bytes and posts."""

    def __init__(self) -> None:
        self.posts = 0
        self.bytes = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                size = int(self.headers["Content-Length"])
                self.rfile.read(size)
                receiver.posts += 1
                receiver.bytes += size
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def measure(stack: spine.Stack, flows: dict, cases: list, runs: int) -> dict[str, list[float]]:
    overheads = {}
    for case in cases:
        samples = []
        for _ in range(runs):
            spine.check_alive(stack)
            samples.append(flow_bench.run_once(flows[case.name], case.inputs).overhead_ms)
        overheads[case.name] = samples
    return overheads


def hook_cost(receiver: Receiver, runs: int = 400) -> tuple[float, float]:
    """Microseconds the hooks of one chain-shaped run take (three node spans, one model call,
    the run span), in this process: tracing off, then on (exporting to the receiver). 400
    runs: 2,000 spans, within the export queue (2,048), so none is dropped."""
    import uuid

    from django.conf import settings

    import studio.tracing as tracing
    from observe.tracing import tracing_configure, tracing_flush

    def one_run() -> None:
        run_id = uuid.uuid4()
        for key in ("input_1", "llm_1", "output_1"):
            with tracing.span(f"node {key}", run_id, **{"studio.node.id": key}):
                if key == "llm_1":
                    tracing.completed("chat echo", 0.001, **{"gen_ai.request.model": "echo"})
        tracing.run_finished(run_id, "run chain", time.time() - 0.01, time.time(), ok=True)

    timings = []
    for mode in ("off", "on"):
        if mode == "on":
            settings.STUDIO_OTLP_ENDPOINT = receiver.url
            tracing_configure()
        started = time.perf_counter()
        for _ in range(runs):
            one_run()
        timings.append((time.perf_counter() - started) / runs * 1e6)
    tracing_flush()
    return timings[0], timings[1]


def restart_worker(stack: spine.Stack) -> None:
    from studio import launch

    launch.stop(stack.web)
    launch.stop(stack.worker)
    spine.start_processes(stack)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per graph and mode")
    args = parser.parse_args()
    cases = [
        flow_bench.Case("chain", flow_bench.chain_graph(), {"message": "one two three four"}),
        flow_bench.Case("branches", flow_bench.branches_graph(), {"message": "beta one two"}),
    ]
    receiver = Receiver()
    os.environ.pop("STUDIO_OTLP_ENDPOINT", None)
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    stack = spine.Stack()
    try:
        spine.start_servers(stack)
        spine.migrate()
        flows = flow_bench.prepare(cases)
        results = {}
        for mode in ("off", "on"):
            if mode == "on":
                os.environ["STUDIO_OTLP_ENDPOINT"] = receiver.url
                restart_worker(stack)
            else:
                spine.start_processes(stack)
            flow_bench.run_once(flows["chain"], cases[0].inputs)  # warm up: the engine loads
            results[mode] = measure(stack, flows, cases, args.runs)
        time.sleep(2)  # the worker's last batch of spans
    finally:
        stack.stop()
    print(f"tracing cost per run (echo model, {args.runs} runs per graph and mode)")
    for case in cases:
        off, on = results["off"][case.name], results["on"][case.name]
        p50_off, p50_on = percentile(off, 50), percentile(on, 50)
        print(
            f"{case.name:<10} overhead p50 off {p50_off:7.1f} ms  on {p50_on:7.1f} ms"
            f"  (p95 off {percentile(off, 95):7.1f}  on {percentile(on, 95):7.1f})"
            f"  tracing +{p50_on - p50_off:6.1f} ms per run"
        )
    print(f"receiver   {receiver.posts} exports, {receiver.bytes / 1024:.1f} KiB")
    off_us, on_us = hook_cost(receiver)
    print(f"hooks      one chain run's spans in-process: off {off_us:.2f} µs, on {on_us:.1f} µs")


if __name__ == "__main__":
    main()
