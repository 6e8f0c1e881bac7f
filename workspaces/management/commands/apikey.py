"""``manage.py apikey create``: make an API key and print only the key (shown once)."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from workspaces.models import FlowAccess, KnowledgeAccess, Workspace
from workspaces.services import KeyScopes, api_key_create

DEMO_WORKSPACE = "demo"


class Command(BaseCommand):
    help = (
        "Create an API key for a workspace (default: the demo workspace); prints only the key. "
        "By default it runs every flow and reaches no knowledge base."
    )

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a key")
        create.add_argument("--workspace", default=DEMO_WORKSPACE, help="workspace slug")
        create.add_argument("--name", default="command line", help="a name to recognise it by")
        create.add_argument("--flows", choices=FlowAccess.values, default=FlowAccess.RUN)
        create.add_argument(
            "--flow", action="append", metavar="SLUG", help="only this flow (repeatable)"
        )
        create.add_argument(
            "--knowledge", choices=KnowledgeAccess.values, default=KnowledgeAccess.NONE
        )
        create.add_argument(
            "--kb", action="append", metavar="SLUG", help="only this knowledge base (repeatable)"
        )
        create.add_argument("--expires-days", type=int, help="stop working after so many days")

    def handle(self, *args, action: str, workspace: str, name: str, **options) -> None:
        target = Workspace.objects.filter(slug=workspace).first()
        if target is None:
            raise CommandError(f"no workspace {workspace!r} (run `make up` once to seed the demo)")
        days = options["expires_days"]
        scopes = KeyScopes(
            flow_access=options["flows"],
            flow_ids=_ids(target.flows, options["flow"], "flow"),
            knowledge_access=options["knowledge"],
            knowledge_base_ids=_ids(target.knowledgebases, options["kb"], "knowledge base"),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
        try:
            _, key = api_key_create(workspace=target, name=name, scopes=scopes)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(key)


def _ids(objects, slugs: list[str] | None, noun: str) -> list[int] | None:
    if slugs is None:
        return None
    found = dict(objects.filter(slug__in=slugs).values_list("slug", "pk"))
    missing = sorted(set(slugs) - set(found))
    if missing:
        raise CommandError(f"no {noun} {', '.join(missing)} in this workspace")
    return list(found.values())
