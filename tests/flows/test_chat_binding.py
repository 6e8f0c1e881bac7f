"""A chat message feeds a flow's text input, whatever it is named; tokens come from the answer."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from flows.demo import assistant_graph
from flows.models import Run
from flows.selectors import chat_binding
from flows.services import flow_create, flow_publish


def graph_asking(field: str, type_: str = "text") -> dict:
    graph = assistant_graph(model="echo")
    graph["nodes"][0]["config"]["fields"] = [{"name": field, "type": type_}]
    graph["nodes"][1]["config"]["prompt"] = "Q: {{" + field + "}}" if type_ == "text" else "hi"
    graph["edges"][0]["source_port"] = field
    graph["edges"][0]["target_port"] = field
    if type_ != "text":
        graph["edges"].pop(0)
    return graph


def test_the_chat_page_feeds_the_flows_own_text_input(client, owner, workspace, echo_model):
    flow = flow_publish(
        flow=flow_create(workspace=workspace, slug="qa", name="QA", graph=graph_asking("question"))
    )
    binding = chat_binding(flow.published_version)
    assert (binding.input, binding.answer_nodes) == ("question", frozenset({"llm_1"}))

    client.force_login(owner)
    response = client.post("/chat/qa/send", {"message": "why is the sky blue"})

    assert response.status_code == 200
    assert Run.objects.get().inputs == {"question": "why is the sky blue"}
    assert 'data-nodes="llm_1"' in response.content.decode()


def test_a_flow_without_text_input_cannot_serve_chat(workspace, echo_model):
    flow = flow_publish(
        flow=flow_create(
            workspace=workspace, slug="n", name="N", graph=graph_asking("count", "number")
        )
    )
    with pytest.raises(ValidationError, match="takes no text input"):
        chat_binding(flow.published_version)


def test_the_answer_streams_from_whichever_branch_the_run_takes(workspace, echo_model):
    def llm(id_):
        return {
            "id": id_,
            "type": "llm",
            "config": {"model": "echo", "prompt": "{{input_1.message}}"},
        }

    condition = {"variable": "input_1.message", "operator": "contains", "value": "bill"}
    graph = {
        "nodes": [
            {"id": "input_1", "type": "input", "config": {}},
            {
                "id": "route",
                "type": "if_else",
                "config": {"cases": [{"id": "bill", "conditions": [condition]}]},
            },
            llm("billing"),
            llm("other"),
            {
                "id": "merge",
                "type": "variable_aggregator",
                "config": {"variables": ["billing.text", "other.text"]},
            },
            {"id": "output_1", "type": "output", "config": {}},
        ],
        "edges": [
            {
                "source": "route",
                "source_port": "bill",
                "target": "billing",
                "target_port": "_trigger",
            },
            {
                "source": "route",
                "source_port": "else",
                "target": "other",
                "target_port": "_trigger",
            },
            {
                "source": "merge",
                "source_port": "output",
                "target": "output_1",
                "target_port": "text",
            },
        ],
    }
    flow = flow_publish(flow=flow_create(workspace=workspace, slug="r", name="R", graph=graph))
    assert chat_binding(flow.published_version).answer_nodes == {"merge", "billing", "other"}
