"""The demo workspace: an admin, the bundled CPU chat model, the published ``assistant``, and a
knowledge base of the studio's README with the published ``docs`` flow that answers from it (and
lists its sources)."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from catalog.models import Model
from catalog.services import model_create
from catalog.services.models import embedding_model_default
from flows.models import Flow
from flows.services import flow_create, flow_publish
from knowledge.models import KnowledgeBase
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import document_add_text
from workspaces.models import Role, Workspace
from workspaces.services import member_add, workspace_create

DEMO_MODEL = "smollm2-135m-instruct"
DEMO_MODEL_SETTINGS = {"no_repeat_ngram_size": 4}
DEMO_MODEL_SAMPLING = {"repetition_penalty": 1.15}
README = Path(__file__).resolve().parent.parent / "README.md"


def docs_graph(knowledge_base: str = "studio-guide", model: str = DEMO_MODEL) -> dict:
    """input → knowledge retrieval → LLM (answers from the retrieved sources) → output."""
    return {
        "nodes": [
            {
                "id": "input_1",
                "type": "input",
                "position": {"x": 0, "y": 80},
                "config": {"fields": [{"name": "message", "type": "text", "label": "Message"}]},
            },
            {
                "id": "retrieve_1",
                "type": "knowledge_retrieval",
                "position": {"x": 240, "y": 0},
                "config": {"knowledge_base": knowledge_base, "top_k": 3},
            },
            {
                "id": "llm_1",
                "type": "llm",
                "position": {"x": 480, "y": 80},
                # Fitted to a 135M model (bench/demo_answers.py): a short answer asked for, the
                # sources labelled, and room for a sentence or two.
                "config": {
                    "model": model,
                    "system": (
                        "Answer the question in one or two sentences, using only the sources."
                    ),
                    "prompt": "Sources:\n{{context}}\n\nQuestion: {{message}}",
                    "temperature": 0,
                    "max_tokens": 128,
                },
            },
            {
                "id": "output_1",
                "type": "output",
                "position": {"x": 720, "y": 80},
                "config": {"fields": [{"name": "text", "type": "text", "label": "Answer"}]},
            },
        ],
        "edges": [
            _edge("e1", "input_1", "message", "retrieve_1", "query"),
            _edge("e2", "retrieve_1", "context", "llm_1", "context"),
            _edge("e3", "input_1", "message", "llm_1", "message"),
            _edge("e4", "llm_1", "text", "output_1", "text"),
        ],
    }


def _edge(edge_id: str, source: str, source_port: str, target: str, target_port: str) -> dict:
    return {
        "id": edge_id,
        "source": source,
        "source_port": source_port,
        "target": target,
        "target_port": target_port,
    }


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
                    # The conversation's last exchanges: follow-up questions make sense.
                    "memory": "turns",
                    "memory_turns": 3,
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
            # A model this small loops when decoding greedily ("Pixel-Pixel-Pixel…"): no four
            # tokens twice in an answer, and a penalty on the tokens it already holds.
            settings=DEMO_MODEL_SETTINGS,
            sampling=DEMO_MODEL_SAMPLING,
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
    if not KnowledgeBase.objects.filter(workspace=workspace, slug="studio-guide").exists():
        base = kb_create(
            workspace=workspace,
            slug="studio-guide",
            values=BaseSettings(
                name="Studio guide",
                description="The studio's README, to try retrieval and cited answers.",
                embedding_model=embedding_model_default(),
                splitter="markdown",
            ),
            actor=admin,
        )
        # Queued now; the worker that `make up` starts embeds it.
        document_add_text(
            knowledge_base=base, name="README.md", text=README.read_text(), actor=admin
        )
    if not Flow.objects.filter(workspace=workspace, slug="docs").exists():
        flow = flow_create(
            workspace=workspace, slug="docs", name="Ask the docs", graph=docs_graph(), user=admin
        )
        flow_publish(flow=flow, user=admin)
    return password
