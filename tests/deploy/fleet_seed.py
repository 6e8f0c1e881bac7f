"""The fleet test's database: migrated, then what the tests need, by one process of the fleet.

Run as ``manage.py shell -c "from tests.deploy.fleet_seed import main; main()"`` (one Django start
for both steps); prints one JSON line with the API key, so the test process never opens the
fleet's database itself.
"""

from __future__ import annotations

import json

PASSWORD = "fleet-correct-horse-battery"


def seed() -> dict[str, str | int]:
    from django.contrib.auth import get_user_model

    from catalog.services import model_create
    from catalog.services.models import embedding_model_default
    from flows.demo import assistant_graph
    from flows.services import flow_create, flow_publish
    from knowledge.models import KnowledgeBase
    from knowledge.services.bases import BaseSettings, kb_create
    from knowledge.services.documents import document_add_text
    from workspaces.services import api_key_create, member_add, workspace_create

    workspace = workspace_create(slug="fleet", name="Fleet")
    users = get_user_model().objects
    owner = users.create_user("fleet-owner", "owner@example.com", PASSWORD)
    member_add(workspace=workspace, user=owner, role="owner")
    viewer = users.create_user("fleet-viewer", "viewer@example.com", PASSWORD)
    viewing = member_add(workspace=workspace, user=viewer, role="viewer")
    echo = model_create(slug="echo", name="Echo", engine="echo")
    # 200 ms a token: a run lasts long enough for a worker to be killed in the middle of it.
    slow = model_create(
        slug="slow-echo", name="Slow echo", engine="echo", settings={"delay_ms": 200}
    )
    for model, slug in ((echo, "assistant"), (slow, "slow")):
        flow = flow_create(
            workspace=workspace,
            slug=slug,
            name=slug.title(),
            graph=assistant_graph(model=model.slug, max_tokens=64),
            user=owner,
        )
        flow_publish(flow=flow, user=owner)
    embedding_model_default()
    for slug in ("handbook", "notes"):
        kb_create(
            workspace=workspace,
            slug=slug,
            values=BaseSettings(name=slug.title(), chunk_size=64, chunk_overlap=0),
            actor=owner,
        )
    # Ingested while the rest of the fleet starts: the ingestion worker loads its embedder then.
    note, _ = document_add_text(
        knowledge_base=KnowledgeBase.objects.get(slug="notes"),
        name="welcome.txt",
        text="Welcome to the fleet. Every process keeps its own folder.",
        actor=owner,
    )
    other = workspace_create(slug="other", name="Other")
    return {
        "api_key": api_key_create(workspace=workspace, name="fleet")[1],
        "other_key": api_key_create(workspace=other, name="outsider")[1],
        "note": note.id,
        "viewer_membership": viewing.id,
    }


def main() -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    print(json.dumps(seed()))
