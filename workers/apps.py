from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Workers"

    def ready(self) -> None:
        from celery.signals import celeryd_after_setup, worker_process_shutdown, worker_shutdown

        from workers import served
        from workers.resident import runtime

        celeryd_after_setup.connect(served.record, weak=False, dispatch_uid="served_queues")

        # Engines live in the process that runs tasks: the worker itself with the threads pool
        # (GPU workers), each child with prefork. Either way they close when it stops.
        for stopping in (worker_shutdown, worker_process_shutdown):
            stopping.connect(runtime().close_all, weak=False, dispatch_uid=f"close_all:{stopping}")
