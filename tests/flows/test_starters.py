"""The new flow page: blank, or a starter filled in with the workspace's chat model and
knowledge base; and the starters themselves, which must pass the graph check."""

from __future__ import annotations

import pytest
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from catalog.services import model_create
from flows.models import Flow, NodeResult, NodeStatus, RunStatus, VersionKind
from flows.schema import check_graph
from flows.services import flow_publish, run_create
from flows.services.transfer import flow_create_with_draft
from flows.starters import KNOWLEDGE_BASE, MODEL, starters
from knowledge.services.bases import BaseSettings, kb_create
from tests.flows.helpers import wait_for_run

NEW = "/flows/new"


@pytest.fixture
def base(workspace, owner, embedding_model):
    return kb_create(
        workspace=workspace, slug="handbook", values=BaseSettings(name="Handbook"), actor=owner
    )


def node_types(graph: dict) -> list[str]:
    return [n["type"] for n in graph["nodes"]]


# --- the starters ------------------------------------------------------------------------------


def test_the_starters_are_blank_and_the_seven_templates_in_order():
    found = starters()

    assert list(found) == [
        "blank",
        "knowledge_chat",
        "classify_route",
        "summarise",
        "extract_fields",
        "translate",
        "draft_review",
        "extract_reply",
    ]
    assert node_types(found["blank"].graph) == ["input", "output"]
    assert node_types(found["knowledge_chat"].graph) == [
        "input",
        "knowledge_retrieval",
        "llm",
        "output",
    ]
    assert node_types(found["classify_route"].graph).count("llm") == 3
    assert "variable_aggregator" in node_types(found["classify_route"].graph)
    assert "parameter_extractor" in node_types(found["extract_fields"].graph)
    assert [(s.needs_model, s.needs_knowledge_base) for s in found.values()] == [
        (False, False),
        (True, True),
        (True, False),
        (True, False),
        (True, False),
        (True, False),
        (True, False),
        (True, False),
    ]
    assert node_types(found["draft_review"].graph).count("llm") == 2
    assert "template" in node_types(found["extract_reply"].graph)


def test_a_starter_graph_gets_the_chosen_slugs_and_the_file_stays_a_template():
    chat = starters()["knowledge_chat"]

    graph = chat.graph_for(model="echo", knowledge_base="handbook")

    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["llm"]["config"]["model"] == "echo"
    assert nodes["kb"]["config"]["knowledge_base"] == "handbook"
    assert "{{kb.context}}" in nodes["llm"]["config"]["system"]
    assert MODEL not in str(graph) and KNOWLEDGE_BASE not in str(graph)
    assert chat.needs_model  # the loaded starter still holds its placeholders


@pytest.mark.parametrize("key", list(starters()))
def test_every_starter_passes_the_graph_check(key, workspace, owner, echo_model, base):
    graph = starters()[key].graph_for(model="echo", knowledge_base="handbook")

    checked = check_graph(graph, workspace, owner)

    assert checked.of_type("input") and checked.of_type("output")


# --- the page ----------------------------------------------------------------------------------


def test_the_page_offers_the_starters_and_what_the_user_may_use(
    client, owner, workspace, echo_model, base
):
    client.force_login(owner)

    response = client.get(reverse("flows:flow-new"))

    assert response.status_code == 200
    for starter in starters().values():
        assertContains(response, starter.name)
    assertContains(response, '<option value="echo">Echo</option>', html=True)
    assertContains(response, '<option value="handbook">Handbook</option>', html=True)
    assertContains(response, f'action="{reverse("flows:flow-import")}"')
    assertContains(response, 'enctype="multipart/form-data"')


def test_a_limited_member_is_offered_only_what_is_shared_with_them(
    client, make_member, workspace, echo_model, base
):
    model_create(slug="private", name="Private model", engine="echo", workspace=workspace)
    client.force_login(make_member("editor", limited=True))

    response = client.get(reverse("flows:flow-new"))

    assertContains(response, "Echo")  # shared catalog entries are everyone's
    assertNotContains(response, "Private model")
    assertNotContains(response, "Handbook")
    assertContains(response, "You may use no knowledge base in this workspace yet.")


def test_a_blank_flow_is_created_with_its_first_version_and_draft(client, owner, workspace):
    client.force_login(owner)

    response = client.post(reverse("flows:flow-new"), {"starter": "blank", "name": "My flow"})

    flow = Flow.objects.get(workspace=workspace)
    assert response.status_code == 302
    assert response["Location"] in (
        reverse("flows:flow-detail", args=["my-flow"]),
        "/flows/my-flow/edit",
    )
    assert (flow.slug, flow.name) == ("my-flow", "My flow")
    [version] = flow.versions.all()
    assert (version.number, version.kind) == (1, VersionKind.VERSION)
    assert version.note == "Created from the starter “Blank”"
    assert node_types(version.graph) == ["input", "output"]
    assert flow.draft == version.graph
    assert flow.published_version is None
    page = client.get(reverse("flows:flow-detail", args=["my-flow"]))
    assertContains(page, "Created My flow.")


def test_a_starter_is_created_on_the_chosen_model(client, owner, workspace, echo_model):
    client.force_login(owner)
    form = {"starter": "summarise", "name": "Summaries", "model": "echo"}

    client.post(reverse("flows:flow-new"), form)
    client.post(reverse("flows:flow-new"), form)

    flows = Flow.objects.filter(workspace=workspace).order_by("slug")
    assert [f.slug for f in flows] == ["summaries", "summaries-2"]
    llm = next(n for n in flows[0].versions.get().graph["nodes"] if n["type"] == "llm")
    assert llm["config"]["model"] == "echo"
    assert "{{document}}" in llm["config"]["prompt"]


def test_a_starter_that_needs_a_model_says_so(client, owner, workspace, echo_model, base):
    client.force_login(owner)

    missing = client.post(reverse("flows:flow-new"), {"starter": "knowledge_chat", "name": "Ask"})
    unknown = client.post(
        reverse("flows:flow-new"),
        {"starter": "summarise", "name": "S", "model": "gpt-9"},
    )

    assertContains(
        missing, "Choose the chat model that “Chat with a knowledge base” calls.", status_code=400
    )
    assertContains(
        missing,
        "Choose the knowledge base that “Chat with a knowledge base” answers from.",
        status_code=400,
    )
    assertContains(unknown, "Select a valid choice. gpt-9 is not one", status_code=400)
    assert not Flow.objects.exists()


def test_a_name_and_a_known_starter_are_required(client, owner):
    client.force_login(owner)

    response = client.post(reverse("flows:flow-new"), {"starter": "telepathy"})

    assert response.status_code == 400
    assert "starter" in response.context["form"].errors
    assert "name" in response.context["form"].errors
    assert not Flow.objects.exists()


# --- who may -----------------------------------------------------------------------------------


def test_viewer_cannot_create_flows(client, viewer, workspace):
    client.force_login(viewer)

    assert client.get(reverse("flows:flow-new")).status_code == 403
    assert (
        client.post(reverse("flows:flow-new"), {"starter": "blank", "name": "x"}).status_code == 403
    )
    assert not Flow.objects.exists()
    assertNotContains(client.get(reverse("flows:flow-list")), reverse("flows:flow-new"))


def test_an_outsider_creates_in_their_own_workspace(client, outsider, workspace):
    client.force_login(outsider)

    client.post(reverse("flows:flow-new"), {"starter": "blank", "name": "Mine"})

    assert not Flow.objects.filter(workspace=workspace).exists()
    assert Flow.objects.get().workspace.slug == "other"


def test_the_flow_list_links_the_new_flow_page(client, owner):
    client.force_login(owner)

    assertContains(client.get(reverse("flows:flow-list")), f'href="{reverse("flows:flow-new")}"')


def test_wrong_methods_and_anonymous_users(client, owner):
    assertRedirects(
        client.get(reverse("flows:flow-new")),
        f"{reverse('login')}?next={NEW}",
        fetch_redirect_response=False,
    )
    client.force_login(owner)

    assert client.put(reverse("flows:flow-new")).status_code == 405
    assert client.delete(reverse("flows:flow-new")).status_code == 405
    assert not Flow.objects.exists()


# --- a starter runs ----------------------------------------------------------------------------


def _run(workspace, owner, key: str, inputs: dict):
    graph = starters()[key].graph_for(model="echo")
    flow = flow_create_with_draft(workspace=workspace, name=key, graph=graph, user=owner)
    flow = flow_publish(flow=flow, user=owner)
    run = run_create(flow=flow, version=flow.published_version, inputs=inputs, source="studio")
    return wait_for_run(run.id)


def test_the_summary_starter_runs(worker, workspace, owner, echo_model):
    run = _run(workspace, owner, "summarise", {"document": "Tea is grown in Assam."})

    assert run.status == RunStatus.SUCCEEDED, run.error
    # The echo model answers with the prompt it was sent.
    assert run.outputs["text"].startswith("Summarise the document below in 5 bullet points.")
    assert run.outputs["text"].endswith("Tea is grown in Assam.")


def test_the_routing_starter_answers_on_the_chosen_branch_only(
    worker, workspace, owner, echo_model
):
    run = _run(workspace, owner, "classify_route", {"message": "a technical fault"})

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["text"] == "a technical fault"
    statuses = dict(NodeResult.objects.filter(run=run).values_list("node_id", "status"))
    assert statuses["llm_t"] == NodeStatus.SUCCEEDED
    assert statuses["llm_b"] == statuses["llm_o"] == NodeStatus.SKIPPED


# The inputs each starter is run with; the echo model answers with the user message it is sent,
# so an extractor is given the JSON a model would answer.
RUN_INPUTS = {
    "blank": ({"message": "Hello"}, {"text": "Hello"}),
    "knowledge_chat": ({"message": "Where is tea grown?"}, {"text": "Where is tea grown?"}),
    "classify_route": ({"message": "a technical fault"}, {"text": "a technical fault"}),
    "summarise": ({"document": "Tea."}, {}),
    "extract_fields": (
        {"text": '{"name": "Ada", "email": "ada@example.com", "amount": "12"}'},
        {"json": {"name": "Ada", "email": "ada@example.com", "company": None, "amount": 12}},
    ),
    "translate": ({"text": "Good morning", "language": "French"}, {}),
    "draft_review": ({"brief": "A note about the move"}, {}),
    "extract_reply": ({"message": '{"name": "Ada", "request": "a refund"}'}, {}),
}


def test_every_starter_has_inputs_to_run_with():
    assert set(RUN_INPUTS) == set(starters())


@pytest.mark.parametrize("key", list(starters()))
def test_every_starter_runs_on_the_echo_model(key, worker, workspace, owner, echo_model, base):
    inputs, expected = RUN_INPUTS[key]
    graph = starters()[key].graph_for(model="echo", knowledge_base="handbook")
    flow = flow_create_with_draft(workspace=workspace, name=key, graph=graph, user=owner)
    flow = flow_publish(flow=flow, user=owner)

    run = wait_for_run(
        run_create(flow=flow, version=flow.published_version, inputs=inputs, source="studio").id
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs
    for port, value in expected.items():
        assert run.outputs[port] == value


def test_the_new_starters_answer_from_their_inputs(worker, workspace, owner, echo_model):
    translated = _run(workspace, owner, "translate", {"text": "Good morning", "language": "French"})
    reviewed = _run(workspace, owner, "draft_review", {"brief": "A note about the move"})
    replied = _run(
        workspace, owner, "extract_reply", {"message": '{"name": "Ada", "request": "a refund"}'}
    )

    assert translated.outputs["text"] == "Translate the text below into French.\n\nGood morning"
    # The reviewer is sent the drafter's answer, which the echo model made the brief itself.
    assert reviewed.outputs["text"] == "Improve this draft:\n\nA note about the move"
    assert replied.outputs["text"].startswith("Dear Ada,")
    assert "your request (a refund)" in replied.outputs["text"]
