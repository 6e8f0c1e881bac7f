"""The knowledge search tool an agent is given: its definition, its checks, and what it reads
back to the model (untrusted-data delimiters, numbered citations)."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from agents.tools import tools
from agents.tools.base import ToolContext
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import document_add_text
from knowledge.services.ingestion import document_ingest
from tests.knowledge.helpers import PARAGRAPHS, engine_for, in_process_embed
from workspaces.sharing import object_grant


@pytest.fixture
def base(workspace, owner, embedding_model):
    base = kb_create(
        workspace=workspace,
        slug="facts",
        values=BaseSettings(name="Facts", chunk_size=48, chunk_overlap=0),
        actor=owner,
    )
    document, _ = document_add_text(
        knowledge_base=base, name="facts.txt", text="\n\n".join(PARAGRAPHS), actor=owner
    )
    document_ingest(document_id=document.id, embed=in_process_embed())
    return base


def _run(tool, user_id, workspace, params, **config):
    ctx = ToolContext(workspace_id=workspace.id, user_id=user_id, engine_for=engine_for())
    return async_to_sync(tool.arun)(
        ctx, tool.Config(knowledge_base="facts", **config), tool.Params(**params)
    )


def test_the_tool_returns_delimited_passages_with_citations(base, workspace, owner):
    tool = tools()["knowledge_search"]
    definition = tool.definition(tool.Config(knowledge_base="facts"))
    assert definition["function"]["name"] == "knowledge_search"
    assert definition["function"]["parameters"]["required"] == ["query"]
    result = _run(tool, owner.id, workspace, {"query": "What produces ATP in cells?"}, top_k=2)
    assert result.content.startswith("<retrieved_context>") and "untrusted" in result.content
    assert "Mitochondria" in result.content
    citations = result.details["citations"]
    assert len(citations) == 2 and citations[0]["document"] == "facts.txt"
    assert '<source id="1" document="facts.txt">' in result.content


def test_the_tool_refuses_a_user_without_use_and_bad_arguments(base, workspace, owner, make_member):
    tool = tools()["knowledge_search"]
    limited = make_member("operator", limited=True)
    assert tool.check(tool.Config(knowledge_base="facts"), workspace, limited)
    refused = _run(tool, limited.id, workspace, {"query": "ATP"})
    assert refused.content == "You may not search this knowledge base." and not refused.details
    object_grant(obj=base, subject=limited, level="use", actor=owner)
    assert tool.check(tool.Config(knowledge_base="facts"), workspace, limited) == []
    assert "Mitochondria" in _run(tool, limited.id, workspace, {"query": "ATP cells"}).content
    with pytest.raises(ValueError):
        tool.Params(query="")
    with pytest.raises(ValueError):
        tool.Params(query="x", knowledge_base="other")  # the model cannot pick another base
