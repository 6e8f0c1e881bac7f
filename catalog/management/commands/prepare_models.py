"""``manage.py prepare_models``: convert the bundled model once, before workers need it."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from catalog.bundled import ensure_smollm2


class Command(BaseCommand):
    help = (
        "Convert the bundled SmolLM2 GGUF into a safetensors folder (once; later runs are instant)."
    )

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        path = ensure_smollm2()
        self.stdout.write(f"bundled model ready at {path} ({time.monotonic() - started:.1f} s)")
