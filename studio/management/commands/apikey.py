"""``manage.py apikey create``: make an API key and print only the key (shown once)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from studio.models import Workspace
from studio.services import api_key_create

DEMO_WORKSPACE = "demo"


class Command(BaseCommand):
    help = "Create an API key for a workspace (default: the demo workspace); prints only the key."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a key")
        create.add_argument("--workspace", default=DEMO_WORKSPACE, help="workspace slug")
        create.add_argument("--name", default="command line", help="a name to recognise it by")

    def handle(self, *args, action: str, workspace: str, name: str, **options) -> None:
        target = Workspace.objects.filter(slug=workspace).first()
        if target is None:
            raise CommandError(f"no workspace {workspace!r} (run `make up` once to seed the demo)")
        _, key = api_key_create(workspace=target, name=name)
        self.stdout.write(key)
