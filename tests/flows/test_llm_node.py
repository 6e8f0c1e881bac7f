"""The LLM node with library prompts, model defaults and adapters, through the real worker."""

from __future__ import annotations

import pytest

from catalog.models import LoraAdapter
from catalog.services import model_create
from catalog.services.prompts import (
    prompt_create,
    prompt_version_approve,
    prompt_version_create,
    prompt_version_publish,
)
from flows.demo import assistant_graph
from flows.models import NodeResult, RunStatus
from flows.schema import GraphError, check_graph
from flows.services import flow_create, flow_publish, run_create
from tests.flows.helpers import wait_for_run


def _library_graph(model: str, prompt: str, version: int | None = None) -> dict:
    graph = assistant_graph(model=model)
    config = graph["nodes"][1]["config"]
    for key in ("prompt", "system"):
        del config[key]
    config.update(library_prompt=prompt, library_version=version, variables=["message"])
    return graph


def _answer(workspace, owner, graph: dict, slug: str, message: str = "tea") -> tuple:
    flow = flow_publish(
        flow=flow_create(workspace=workspace, slug=slug, name=slug, graph=graph, user=owner),
        user=owner,
    )
    run = run_create(
        flow=flow, version=flow.published_version, inputs={"message": message}, source="studio"
    )
    run = wait_for_run(run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run.outputs["text"], NodeResult.objects.get(run=run, node_id="llm_1").details


@pytest.fixture
def support_prompt(workspace, owner):
    prompt = prompt_create(
        workspace=workspace,
        slug="support",
        name="Support",
        template="first version about {{message}}",
        actor=owner,
    )
    first = prompt.versions.get(number=1)
    prompt_version_approve(version=prompt_version_publish(version=first, actor=owner), actor=owner)
    second = prompt_version_create(
        prompt=prompt, system="", template="second version about {{ message }}", actor=owner
    )
    return prompt, first, second


def test_a_node_follows_the_latest_approved_version_or_a_pinned_one(
    worker, workspace, owner, echo_model, support_prompt
):
    prompt, _, second = support_prompt
    # v2 is a draft: the node follows v1, the latest approved.
    text, details = _answer(workspace, owner, _library_graph("echo", "support"), "latest")
    assert text == "first version about tea" and details["prompt"] == "support v1"

    prompt_version_approve(version=prompt_version_publish(version=second, actor=owner), actor=owner)
    text, details = _answer(workspace, owner, _library_graph("echo", "support"), "latest-2")
    assert text == "second version about tea" and details["prompt"] == "support v2"

    text, _ = _answer(workspace, owner, _library_graph("echo", "support", version=1), "pinned")
    assert text == "first version about tea"


def test_a_graph_naming_an_unusable_prompt_version_is_refused(
    workspace, owner, echo_model, support_prompt
):
    with pytest.raises(GraphError) as caught:
        check_graph(_library_graph("echo", "support", version=2), workspace)  # a draft
    assert "prompt 'support' has no published version 2" in str(caught.value.errors)
    graph = _library_graph("echo", "support")
    graph["nodes"][1]["config"]["variables"] = []
    with pytest.raises(GraphError) as caught:
        check_graph(graph, workspace)
    assert "uses variables message: declare them" in str(caught.value.errors)


def test_the_models_default_sampling_applies_unless_the_node_sets_its_own(worker, workspace, owner):
    model_create(
        slug="short", name="Short", engine="echo", workspace=workspace, sampling={"max_tokens": 2}
    )
    graph = assistant_graph(model="short")
    del graph["nodes"][1]["config"]["max_tokens"]
    text, details = _answer(workspace, owner, graph, "defaults", "one two three four")
    assert text == "one two" and details["finish_reason"] == "length"
    own = assistant_graph(model="short", max_tokens=3)
    text, _ = _answer(workspace, owner, own, "own", "one two three four")
    assert text == "one two three"


def test_a_node_may_name_only_an_adapter_its_model_has(workspace, owner, echo_model):
    graph = assistant_graph(model="echo")
    graph["nodes"][1]["config"]["adapter"] = "legal"
    with pytest.raises(GraphError) as caught:
        check_graph(graph, workspace)
    assert "model 'echo' has no adapter 'legal'" in str(caught.value.errors)
    assert not LoraAdapter.objects.exists()
