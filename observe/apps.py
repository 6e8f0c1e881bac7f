"""Observing what runs: the runs list and search, dashboards, alerts, metrics and tracing."""

from django.apps import AppConfig


class ObserveConfig(AppConfig):
    name = "observe"
    verbose_name = "Observe"

    def ready(self) -> None:
        from celery.signals import worker_process_shutdown, worker_shutdown

        from observe.tracing import tracing_configure, tracing_flush

        if tracing_configure():
            for stopping in (worker_shutdown, worker_process_shutdown):
                stopping.connect(tracing_flush, weak=False, dispatch_uid=f"trace_flush:{stopping}")
