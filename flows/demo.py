"""The demo workspace: an admin, the bundled CPU chat model, and the published ``assistant``."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction

from catalog.models import Model
from catalog.services import model_create
from flows.models import Flow
from flows.services import flow_create, flow_publish
from studio.models import Role, Workspace
from studio.services import member_add, workspace_create

DEMO_MODEL = "smollm2-135m-instruct"


def assistant_graph(model: str = DEMO_MODEL, max_tokens: int = 256) -> dict:
    return {
        "nodes": [
            {
                "id": "input_1",
                "type": "input",
                "position": {"x": 0, "y": 80},
                "config": {"fields": [{"name": "message", "type": "text", "label": "Message"}]},
            },
            {
                "id": "llm_1",
                "type": "llm",
                "position": {"x": 280, "y": 80},
                "config": {
                    "model": model,
                    "prompt": "{{message}}",
                    "system": "You are a helpful assistant. Answer briefly.",
                    "temperature": 0,
                    "max_tokens": max_tokens,
                },
            },
            {
                "id": "output_1",
                "type": "output",
                "position": {"x": 560, "y": 80},
                "config": {"fields": [{"name": "text", "type": "text", "label": "Answer"}]},
            },
        ],
        "edges": [
            {
                "id": "e1",
                "source": "input_1",
                "source_port": "message",
                "target": "llm_1",
                "target_port": "message",
            },
            {
                "id": "e2",
                "source": "llm_1",
                "source_port": "text",
                "target": "output_1",
                "target_port": "text",
            },
        ],
    }


@transaction.atomic
def demo_seed() -> str | None:
    """Create what is missing; return the admin's new password if the admin was created now."""
    password = None
    User = get_user_model()
    admin = User.objects.filter(username="admin").first()
    if admin is None:
        password = secrets.token_urlsafe(12)
        admin = User.objects.create_superuser("admin", "admin@localhost", password)
    workspace = Workspace.objects.filter(slug="demo").first() or workspace_create(
        slug="demo", name="Demo"
    )
    member_add(workspace=workspace, user=admin, role=Role.OWNER)
    if not Model.objects.filter(slug=DEMO_MODEL, workspace__isnull=True).exists():
        model_create(
            slug=DEMO_MODEL,
            name="SmolLM2 135M Instruct (CPU)",
            engine="cpu",
            weights=f"bundled:{DEMO_MODEL}",
            context_length=8192,
        )
    if not Flow.objects.filter(workspace=workspace, slug="assistant").exists():
        flow = flow_create(
            workspace=workspace,
            slug="assistant",
            name="Assistant",
            graph=assistant_graph(),
            user=admin,
        )
        flow_publish(flow=flow, user=admin)
    return password
