"""``manage.py seed_demo``: the demo workspace, its admin, the CPU model and ``assistant``."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from flows.demo import demo_seed


class Command(BaseCommand):
    help = "Seed the demo workspace (idempotent). Prints the admin password when it creates it."

    def handle(self, *args, **options) -> None:
        password = demo_seed()
        if password:
            self.stdout.write(f"admin password: {password}")
        else:
            self.stdout.write("admin exists (reset its password: manage.py changepassword admin)")
