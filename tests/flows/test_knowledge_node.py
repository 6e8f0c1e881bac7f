"""The knowledge retrieval node in a flow, through the real worker: the retrieved chunks reach
the model inside untrusted-data delimiters, and their citations reach the run's events."""

from __future__ import annotations

import pytest

from flows.models import NodeResult, RunStatus
from flows.schema import GraphError, check_graph
from flows.services import flow_create, flow_publish, run_create
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import document_add_text
from tests.flows.helpers import logged_events, wait_for_run
from tests.knowledge.helpers import PARAGRAPHS, wait_for
from workspaces.sharing import object_grant


def rag_graph(knowledge_base: str, model: str = "echo", **retrieval) -> dict:
    return {
        "nodes": [
            {
                "id": "input_1",
                "type": "input",
                "position": {"x": 0, "y": 0},
                "config": {"fields": [{"name": "message", "type": "text", "label": "Message"}]},
            },
            {
                "id": "kb_1",
                "type": "knowledge_retrieval",
                "position": {"x": 200, "y": 0},
                "config": {"knowledge_base": knowledge_base, **retrieval},
            },
            {
                "id": "llm_1",
                "type": "llm",
                "position": {"x": 400, "y": 0},
                "config": {
                    "model": model,
                    "prompt": "{{context}}\n\nQuestion: {{message}}",
                    "max_tokens": 400,
                },
            },
            {
                "id": "output_1",
                "type": "output",
                "position": {"x": 600, "y": 0},
                "config": {"fields": [{"name": "text", "type": "text", "label": "Answer"}]},
            },
        ],
        "edges": [
            {
                "id": "e1",
                "source": "input_1",
                "source_port": "message",
                "target": "kb_1",
                "target_port": "query",
            },
            {
                "id": "e2",
                "source": "kb_1",
                "source_port": "context",
                "target": "llm_1",
                "target_port": "context",
            },
            {
                "id": "e3",
                "source": "input_1",
                "source_port": "message",
                "target": "llm_1",
                "target_port": "message",
            },
            {
                "id": "e4",
                "source": "llm_1",
                "source_port": "text",
                "target": "output_1",
                "target_port": "text",
            },
        ],
    }


@pytest.fixture
def base(workspace, owner, embedding_model):
    return kb_create(
        workspace=workspace,
        slug="facts",
        values=BaseSettings(name="Facts", chunk_size=48, chunk_overlap=0, top_k=2),
        actor=owner,
    )


def test_a_flow_answers_from_its_knowledge_base_with_citations(
    worker, workspace, owner, echo_model, base
):
    document, _ = document_add_text(
        knowledge_base=base, name="facts.md", text="\n\n".join(PARAGRAPHS), actor=owner
    )
    assert wait_for(document).status == "ready", document.error
    flow = flow_publish(
        flow=flow_create(
            workspace=workspace, slug="rag", name="RAG", graph=rag_graph("facts"), user=owner
        ),
        user=owner,
    )
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "Which organelle produces ATP?"},
        source="studio",
        user=owner,
    )
    run = wait_for_run(run.id, timeout=90)
    assert run.status == RunStatus.SUCCEEDED, run.error
    answer = run.outputs["text"]  # the echo model answers with its prompt
    assert answer.startswith("<retrieved_context>") and "untrusted" in answer
    assert "Mitochondria" in answer and "Question: Which organelle produces ATP?" in answer
    retrieval = NodeResult.objects.get(run=run, node_id="kb_1")
    citations = retrieval.outputs["citations"]
    assert len(citations) == 2 and citations[0]["document"] == "facts.md"
    assert "Mitochondria" in citations[0]["text"]
    assert retrieval.details["retrieval"]["mode"] == "hybrid"
    finished = [
        e for e in logged_events(run.id) if e["type"] == "node.finished" and e["node"] == "kb_1"
    ]
    assert finished[0]["data"]["outputs"]["citations"][0]["chunk_id"] == citations[0]["chunk_id"]


def test_a_graph_naming_a_base_the_author_may_not_use_is_refused(
    workspace, owner, make_member, echo_model, base
):
    with pytest.raises(GraphError) as caught:
        check_graph(rag_graph("missing"), workspace)
    assert any(
        "knowledge base 'missing' is not in this workspace" in e for e in caught.value.errors
    )
    limited = make_member("editor", limited=True)
    with pytest.raises(GraphError) as caught:
        flow_create(
            workspace=workspace, slug="rag", name="RAG", graph=rag_graph("facts"), user=limited
        )
    assert "knowledge base 'facts' is not in this workspace" in str(caught.value)
    object_grant(obj=base, subject=limited, level="use", actor=owner)
    flow_create(workspace=workspace, slug="rag", name="RAG", graph=rag_graph("facts"), user=limited)
