"""A member who saves a flow naming something they may not use gets the same answer as for a
name that does not exist, so that node checks cannot be used to probe for private slugs."""

from __future__ import annotations

import pytest

from catalog.services import model_create
from catalog.services.routes import TargetSpec, route_create
from flows.demo import assistant_graph
from flows.schema import GraphError
from flows.services import flow_create, flow_publish
from knowledge.services.bases import BaseSettings, kb_create
from tests.flows.test_knowledge_node import rag_graph
from tests.flows.test_waiting_nodes import child_graph, parent_graph


def _problems(workspace, user, graph, slug: str) -> list[str]:
    with pytest.raises(GraphError) as caught:
        flow_create(workspace=workspace, slug=slug, name=slug, graph=graph, user=user)
    return caught.value.errors


def _route_graph(route: str) -> dict:
    graph = assistant_graph()
    del graph["nodes"][1]["config"]["model"]
    graph["nodes"][1]["config"]["route"] = route
    return graph


def _same_answer(workspace, user, graph_for, private: str, missing: str) -> None:
    hidden = _problems(workspace, user, graph_for(private), "hidden")
    absent = _problems(workspace, user, graph_for(missing), "absent")
    assert hidden, "the private name must be refused"
    assert [p.replace(private, "NAME") for p in hidden] == [
        p.replace(missing, "NAME") for p in absent
    ]


@pytest.fixture
def limited(make_member):
    return make_member("editor", limited=True)


def test_an_unshared_model_reads_as_a_missing_one(workspace, limited):
    model_create(slug="secret-chat", name="Secret", engine="echo", workspace=workspace)
    _same_answer(workspace, limited, assistant_graph, "secret-chat", "nothing-chat")


def test_an_unshared_model_of_another_task_reads_as_a_missing_one(
    workspace, limited, embedding_model
):
    model_create(
        slug="secret-embed", name="Secret", engine="echo", task="embedding", workspace=workspace
    )
    _same_answer(workspace, limited, assistant_graph, "secret-embed", "nothing-embed")


def test_an_unshared_route_reads_as_a_missing_one(workspace, limited):
    echo = model_create(slug="echo-r", name="Echo", engine="echo", workspace=workspace)
    route_create(
        workspace=workspace, slug="secret-route", name="R", strategy="fallback",
        targets=[TargetSpec(echo)],
    )  # fmt: skip
    _same_answer(workspace, limited, _route_graph, "secret-route", "nothing-route")


def test_an_unshared_knowledge_base_reads_as_a_missing_one(
    workspace, owner, limited, embedding_model
):
    model_create(slug="echo", name="Echo", engine="echo")
    kb_create(
        workspace=workspace, slug="secret-kb", values=BaseSettings(name="Secret"), actor=owner
    )
    _same_answer(workspace, limited, rag_graph, "secret-kb", "nothing-kb")


def test_an_unshared_flow_reads_as_a_missing_one_to_a_sub_flow_node(workspace, owner, limited):
    flow = flow_create(
        workspace=workspace, slug="secret-flow", name="S", graph=child_graph(), user=owner
    )
    flow_publish(flow=flow, user=owner)
    _same_answer(workspace, limited, parent_graph, "secret-flow", "nothing-flow")
