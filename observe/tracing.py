"""OpenTelemetry set-up: a TracerProvider exporting over OTLP/HTTP, only when an endpoint is set.

Called from ``ObserveConfig.ready``: the web process and workers alike (Celery's worker loads
Django first). A prefork child inherits the provider; the SDK restarts its export thread after
the fork, and ``tracing_flush`` sends what is left when a worker process stops (a child ends
with ``os._exit``: no atexit hook runs). With no endpoint nothing here runs past the first
test and the SDK is never imported; ``studio.tracing``'s hooks stay no-ops.
"""

from __future__ import annotations

import os

from django.conf import settings

import studio.tracing


def tracing_endpoint() -> str:
    """The OTLP/HTTP traces URL: ``STUDIO_OTLP_ENDPOINT`` or the standard variable, as a base
    (``http://collector:4318``) or as the full traces URL; '' when tracing is off."""
    base = settings.STUDIO_OTLP_ENDPOINT or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    base = base.strip().rstrip("/")
    if not base:
        return ""
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def tracing_configure() -> bool:
    """Install the exporting TracerProvider if an endpoint is set; True when tracing is on."""
    endpoint = tracing_endpoint()
    if not endpoint or studio.tracing.ENABLED:
        return bool(endpoint)
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.STUDIO_OTLP_SERVICE_NAME}),
        id_generator=_run_ids(),
    )
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=1000)
    )
    trace.set_tracer_provider(provider)
    studio.tracing.ENABLED = True
    return True


def tracing_flush(timeout_ms: int = 5000, **_signal: object) -> None:
    """Send what is buffered (at a worker's shutdown, in tests)."""
    if not studio.tracing.ENABLED:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if flush is not None:
        flush(timeout_ms)


def _run_ids() -> object:
    """Random ids, except the run span's: its trace and span ids come from the run's UUID
    (``studio.tracing.run_ids``) so that spans made elsewhere already point at it."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RunIds(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            forced = studio.tracing.forced_ids.get()
            return forced[0] if forced else super().generate_trace_id()

        def generate_span_id(self) -> int:
            forced = studio.tracing.forced_ids.get()
            return forced[1] if forced else super().generate_span_id()

    return RunIds()
