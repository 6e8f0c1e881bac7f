"""OpenTelemetry traces: a run's spans reach an OTLP/HTTP receiver, nested run > node > model
call with GenAI attributes; with no endpoint set, tracing is off and the SDK never loads."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flows.models import RunSource, RunStatus
from flows.services import run_create
from tests.flows.helpers import wait_for_run


class Receiver:
    """A local OTLP/HTTP traces endpoint: it keeps every span it is sent, decoded."""

    def __init__(self) -> None:
        self.spans: list = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                receiver.paths.append(self.path)
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        receiver.spans.extend(scope_spans.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of_trace(self, trace_id: bytes) -> list:
        return [s for s in self.spans if s.trace_id == trace_id]


@pytest.fixture(scope="module")
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def tracing_worker(worker_process, receiver):
    """The session's worker, restarted to export its traces to the receiver; stopped after, so
    that later tests get one with tracing off."""
    worker_process.stop()
    worker_process.env["STUDIO_OTLP_ENDPOINT"] = receiver.url
    try:
        worker_process.start()
        yield worker_process
    finally:
        worker_process.env.pop("STUDIO_OTLP_ENDPOINT", None)
        worker_process.stop()


def attributes(span) -> dict:
    values = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        values[kv.key] = getattr(kv.value, which)
    return values


def wait_for_spans(receiver: Receiver, trace_id: bytes, names: set[str], timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = {s.name: s for s in receiver.of_trace(trace_id)}
        if names <= spans.keys():
            return spans
        time.sleep(0.1)
    raise AssertionError(f"spans {sorted(spans)} after {timeout} s, wanted {sorted(names)}")


@pytest.mark.django_db(transaction=True)
def test_a_run_is_traced_run_then_node_then_model_call(
    tracing_worker, worker, receiver, echo_model, make_flow
):
    flow = make_flow(echo_model)
    run = run_create(
        flow=flow, version=flow.published_version, inputs={"message": "a b c"}, source=RunSource.API
    )
    assert wait_for_run(run.id).status == RunStatus.SUCCEEDED

    trace_id = uuid.UUID(str(run.id)).bytes
    spans = wait_for_spans(
        receiver, trace_id, {"run assistant", "node input_1", "node llm_1", "chat echo"}
    )

    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    root, node, call = spans["run assistant"], spans["node llm_1"], spans["chat echo"]
    assert root.parent_span_id == b""
    assert node.parent_span_id == root.span_id
    assert spans["node input_1"].parent_span_id == root.span_id
    assert call.parent_span_id == node.span_id
    assert root.start_time_unix_nano <= node.start_time_unix_nano
    assert call.end_time_unix_nano <= node.end_time_unix_nano <= root.end_time_unix_nano
    assert attributes(node)["studio.node.type"] == "llm"
    assert attributes(call) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "echo",
        "gen_ai.request.model": "echo",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 3,
        "studio.cache_hit": False,
    }
    assert attributes(root)["studio.run.id"] == str(run.id)
    assert attributes(root)["gen_ai.usage.output_tokens"] == 3


def test_tracing_is_off_by_default_and_loads_no_sdk():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STUDIO_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    }
    script = (
        "import sys, django; django.setup()\n"
        "import studio.tracing as t\n"
        "assert t.ENABLED is False\n"
        "with t.span('node', None, a=1) as s: assert s is None\n"
        "t.completed('chat', 0.1); t.run_finished('0' * 32, 'run', 0, 1, ok=True)\n"
        # redis-py imports the SDK's metrics package by itself once it is installed: what
        # tracing would load (the SDK's trace package, the exporter) stays out.
        "tracing = ('opentelemetry.sdk.trace', 'opentelemetry.exporter')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(tracing))\n"
        "assert not loaded, loaded\n"
        "from opentelemetry import trace\n"
        "assert type(trace.get_tracer_provider()).__name__ == 'ProxyTracerProvider'\n"
        "print('off')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "off"
