"""Span hooks for OpenTelemetry traces: no-ops until ``observe.tracing`` turns them on.

The apps below ``observe`` (catalog, knowledge, flows, agents) call these and nothing else, so
that they never import ``observe``. Off (no OTLP endpoint configured), every hook returns a
shared null context after one attribute read, and the OpenTelemetry SDK is never imported.

Every span of a flow run joins one trace whose id is the run's UUID, under a run span whose id
is derived from it too: a run's nodes execute in several tasks on several workers, and this is
how their spans find their parent without passing a context along. The run span itself is sent
when the run ends (``run_finished``), with the run's own start and end times.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

# Set by ``observe.tracing.tracing_configure`` once a TracerProvider exports somewhere.
ENABLED = False

_OFF = contextlib.nullcontext()

log = logging.getLogger(__name__)
_tracer: Any = None

# The ids the next span gets, read by observe's id generator: the run span's fixed ids.
forced_ids: ContextVar[tuple[int, int] | None] = ContextVar("forced_ids", default=None)


def run_ids(run_id: Any) -> tuple[int, int]:
    """The trace id and the run span's id of a run: its UUID, and the UUID's low 64 bits."""
    number = uuid.UUID(str(run_id)).int
    return number, (number & 0xFFFF_FFFF_FFFF_FFFF) or 1


def span(name: str, run_id: Any = None, **attributes: Any) -> contextlib.AbstractContextManager:
    """A span around a block, the current span's child, or the run span's when ``run_id`` is
    given. Attributes whose value is None are left out."""
    if not ENABLED:
        return _OFF
    return _span(name, run_id, attributes)


@contextlib.contextmanager
def _span(name: str, run_id: Any, attributes: dict[str, Any]) -> Iterator[Any]:
    from opentelemetry import trace

    context = None
    if run_id is not None:
        trace_id, span_id = run_ids(run_id)
        parent = trace.SpanContext(
            trace_id,
            span_id,
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
        context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    tracer = _get_tracer()
    with tracer.start_as_current_span(name, context=context, attributes=_kept(attributes)) as s:
        yield s


def completed(name: str, seconds: float, ok: bool = True, **attributes: Any) -> None:
    """A span for something that just ended after ``seconds`` (a model call as it is metered)."""
    if not ENABLED:
        return
    try:
        _completed(name, seconds, ok, attributes)
    except Exception:  # a trace is never worth failing the call it describes
        log.exception("the span %s was not made", name)


def _completed(name: str, seconds: float, ok: bool, attributes: dict[str, Any]) -> None:
    from opentelemetry import trace

    end = time.time_ns()
    start = end - int(seconds * 1e9)
    s = _get_tracer().start_span(name, attributes=_kept(attributes), start_time=start)
    if not ok:
        s.set_status(trace.StatusCode.ERROR)
    s.end(end_time=end)


def run_finished(
    run_id: Any, name: str, started: float, finished: float, ok: bool, **attributes: Any
) -> None:
    """The run span, sent once the run is over; ``started``/``finished`` are Unix seconds."""
    if not ENABLED:
        return
    try:
        _run_finished(run_id, name, started, finished, ok, attributes)
    except Exception:  # a trace is never worth failing the run it describes
        log.exception("the span of run %s was not made", run_id)


def _run_finished(
    run_id: Any, name: str, started: float, finished: float, ok: bool, attributes: dict[str, Any]
) -> None:
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    token = forced_ids.set(run_ids(run_id))
    try:
        s = _get_tracer().start_span(
            name,
            context=otel_context.Context(),  # a root: no parent, whatever is current
            attributes=_kept(attributes),
            start_time=int(started * 1e9),
        )
    finally:
        forced_ids.reset(token)
    if not ok:
        s.set_status(trace.StatusCode.ERROR)
    s.end(end_time=int(finished * 1e9))


def _get_tracer() -> Any:
    """The studio's tracer, made once (asked for only once tracing is on)."""
    global _tracer
    if _tracer is None:
        from opentelemetry import trace

        _tracer = trace.get_tracer("studio")
    return _tracer


def _kept(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}
