"""``manage.py worker``: one Celery worker pool for the queues named (one pool per queue kind)."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError
from pydantic import ValidationError

from catalog.engines.vllm import VllmSettings
from studio import launch
from workers import queues

POOLS = ("threads", "prefork", "solo")


def queue_error(name: str) -> str | None:
    """Why ``name`` is not a queue any task is sent to, or None."""
    if name in queues.default_queues():
        return None
    try:
        VllmSettings(queue=name)  # the one rule for GPU queue names: gpu or gpu.<model>
    except ValidationError:
        known = ", ".join(queues.default_queues())
        return f"unknown queue {name!r}: the queues are {known}, gpu and gpu.<model>"
    return None


class Command(BaseCommand):
    help = (
        "Start a Celery worker for the queues named, e.g. --queues flows,maintenance or "
        "--queues gpu.llama-70b. It replaces this process (signals reach Celery directly)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--queues", required=True, help="comma-separated queue names")
        parser.add_argument("--concurrency", type=int, default=8, help="threads (or processes)")
        parser.add_argument(
            "--pool",
            choices=POOLS,
            default="threads",
            help="threads (default: one process, so its threads share the resident engines)",
        )
        parser.add_argument("--name", default="", help="node name (default: the first queue)")

    def handle(self, *args, queues: str, concurrency: int, pool: str, name: str, **options):
        names = [item.strip() for item in queues.split(",") if item.strip()]
        if not names:
            raise CommandError("--queues names no queue")
        for queue in names:
            if error := queue_error(queue):
                raise CommandError(error)
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        if pool == "prefork" and any(q.startswith("gpu") for q in names):
            # Each prefork child would load its own copy of the model (catalog/engines/vllm.py).
            raise CommandError("a GPU queue needs --pool threads: one process per model")
        command = launch.worker_command(
            names,
            concurrency=concurrency,
            beat=False,
            name=name or names[0].replace(".", "-"),
            pool=pool,
        )
        os.execv(command[0], command)
