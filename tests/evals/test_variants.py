"""Evaluating a flow version with a model or a library prompt swapped in: through the real
worker with remote models scripted at the network boundary (the base answers "A", the variant
"B", and their scores differ), the variant never published nor served, and the swaps a member
may not make refused with form errors and nothing stored."""

from __future__ import annotations

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from catalog.models import Prompt
from catalog.services import model_create
from catalog.services.prompts import prompt_create, prompt_version_create, prompt_version_publish
from evals.models import EvalRun, EvalStatus
from evals.services import eval_run_start, eval_variant_start
from evals.variants import ALL, Swap, variant_label
from flows.models import FlowVersion, Run, RunSource, VersionKind
from flows.services import flow_publish
from flows.services.versions import (
    flow_variant_create,
    flow_version_republish,
    flow_version_restore,
)
from tests.agents.scripted_model import ScriptedModel, answer
from tests.evals.test_eval_runs import make_dataset, url, wait_for_eval
from workspaces.models import Workspace
from workspaces.sharing import object_grant

EXACT = [{"kind": "exact_match"}]


def remote(server: ScriptedModel, slug: str, workspace, owner):
    return model_create(
        slug=slug,
        name=slug.title(),
        engine="openai_compatible",
        weights="served-model",
        settings={"base_url": f"{server.url}/v1", "retries": 0},
        workspace=workspace,
        actor=owner,
    )


@pytest.fixture
def servers():
    started = {name: ScriptedModel().start() for name in ("a", "b")}
    started["a"].plan(answer("A"))  # the last reply repeats: every call answers "A"
    started["b"].plan(answer("B"))
    yield started
    for server in started.values():
        server.stop()


def variants_of(flow) -> list[FlowVersion]:
    return list(flow.versions.filter(kind=VersionKind.VARIANT))


def form(flow, **swap) -> dict:
    return {
        "cases": "current",
        "flow_version": flow.published_version_id,
        "evaluators": ["exact_match"],
        **swap,
    }


# --- through the real worker ----------------------------------------------------------------


def test_a_model_swapped_in_is_evaluated_on_the_worker_and_never_served(
    worker_may_call_loopback, live_studio, api_key, client, servers, make_flow, workspace, owner
):
    model_a = remote(servers["a"], "remote-a", workspace, owner)
    remote(servers["b"], "remote-b", workspace, owner)
    flow = make_flow(model_a)
    published = flow.published_version
    dataset = make_dataset(workspace, owner, flow, ["one", "two", "three"], ["A"] * 3)
    base = wait_for_eval(
        eval_run_start(dataset=dataset, evaluators=EXACT, flow_version=published, actor=owner)
    )

    client.force_login(owner)
    page = client.get(url("eval-new", dataset.slug)).content.decode()
    assert 'id="swap-help"' in page and "Remote-B (remote-b)" in page
    response = client.post(
        url("eval-new", dataset.slug), form(flow, swap_model_node="llm_1", swap_model="remote-b")
    )
    assert response.status_code == 302, response.content.decode()
    swapped = wait_for_eval(EvalRun.objects.exclude(id=base.id).get())

    assert (base.status, swapped.status) == (EvalStatus.DONE, EvalStatus.DONE)
    assert sorted(r.output for r in base.results.all()) == ["A"] * 3
    assert sorted(r.output for r in swapped.results.all()) == ["B"] * 3
    assert base.aggregates[0]["pass_rate"] == 1.0 and swapped.aggregates[0]["pass_rate"] == 0.0
    variant = swapped.flow_version
    assert (variant.kind, variant.number, swapped.base_version) == (
        VersionKind.VARIANT,
        None,
        published,
    )
    assert swapped.variant == {
        "model": {"node": "llm_1", "from": "remote-a", "to": "remote-b", "nodes": ["llm_1"]}
    }
    llm = next(n for n in variant.graph["nodes"] if n["id"] == "llm_1")
    assert llm["config"]["model"] == "remote-b"
    assert all(r.run.flow_version_id == variant.id for r in swapped.results.all())

    # Nothing was saved or published: the flow serves version 1 still, the API runs it.
    flow.refresh_from_db()
    assert flow.published_version_id == published.id
    assert list(flow.versions.filter(number__isnull=False).values_list("number", flat=True)) == [1]
    served = httpx.post(
        f"{live_studio}/api/v1/flows/{flow.slug}/runs",
        json={"inputs": {"message": "one"}},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60,
    )
    assert served.status_code == 200, served.text
    assert served.json()["outputs"] == {"text": "A"}
    run = Run.objects.get(id=served.json()["run_id"])
    assert (run.source, run.flow_version_id) == (RunSource.API, published.id)

    label = "v1 + model remote-b in llm_1"
    detail = client.get(url("eval-detail", dataset.slug, swapped.id)).content.decode()
    assert f'<span id="eval-variant">{label}</span>' in detail
    listed = client.get(url("eval-list", dataset.slug)).content.decode()
    assert label in listed and "<td data-label>v1</td>" in listed
    a_run = swapped.results.first().run_id
    assert (
        "Evaluation variant"
        in client.get(reverse("flows:run-detail", args=[a_run])).content.decode()
    )
    history = client.get(reverse("flows:flow-history", args=[flow.slug]))
    assert [v.number for v in history.context["versions"]] == [1]


# --- never published, never served ---------------------------------------------------------


@pytest.fixture
def flow(make_flow, echo_model):
    return make_flow(echo_model)


@pytest.fixture
def other_model(workspace, owner):
    return model_create(slug="other-echo", name="Other", engine="echo", workspace=workspace)


def a_variant(flow, owner) -> FlowVersion:
    graph = flow.published_version.graph
    return flow_variant_create(flow=flow, base=flow.published_version, graph=graph, user=owner)


def test_a_variant_is_never_published_republished_or_restored(flow, owner, client):
    variant = a_variant(flow, owner)
    assert a_variant(flow, owner) == variant  # the same swap again: the same stored variant
    with pytest.raises(ValidationError):
        flow_publish(flow=flow, version=variant, user=owner)
    with pytest.raises(ValidationError):
        flow_version_republish(flow=flow, version=variant, user=owner)
    with pytest.raises(ValidationError):
        flow_version_restore(flow=flow, version=variant, user=owner)
    with pytest.raises(ValidationError):  # a variant is made from a numbered version only
        flow_variant_create(flow=flow, base=variant, graph=variant.graph, user=owner)
    flow.refresh_from_db()
    assert flow.published_version.number == 1 and flow.draft is None
    # A later publish of the flow takes its latest numbered version, never the variant.
    assert flow_publish(flow=flow, user=owner).published_version.number == 1


def test_a_variant_of_another_flows_version_is_refused(flow, make_flow, echo_model, owner):
    other = make_flow(echo_model, slug="other")
    with pytest.raises(ValidationError):
        flow_variant_create(
            flow=flow, base=other.published_version, graph=flow.published_version.graph
        )
    assert not variants_of(flow) and not variants_of(other)


# --- a prompt swapped in, and the label -----------------------------------------------------


def library_prompt(workspace, owner, slug="greet", template="Say hello to {{message}}"):
    prompt = prompt_create(
        workspace=workspace, slug=slug, name=slug, template=template, actor=owner
    )
    return prompt_version_publish(version=prompt.versions.get(number=1), actor=owner)


def test_a_library_prompt_swapped_in_from_the_form(
    client, flow, workspace, owner, other_model, monkeypatch
):
    monkeypatch.setattr("evals.services._tick_send", lambda *a, **k: None)
    version = library_prompt(workspace, owner)
    dataset = make_dataset(workspace, owner, flow, ["Ann"])
    client.force_login(owner)
    response = client.post(
        url("eval-new", dataset.slug),
        form(
            flow,
            swap_model_node=ALL + "echo",
            swap_model="other-echo",
            swap_prompt_node="llm_1",
            swap_prompt=version.id,
        ),
    )
    assert response.status_code == 302, response.content.decode()
    eval_run = EvalRun.objects.get()
    config = next(n for n in eval_run.flow_version.graph["nodes"] if n["id"] == "llm_1")["config"]
    assert (config["library_prompt"], config["library_version"]) == ("greet", 1)
    assert config["variables"] == ["message"] and config["model"] == "other-echo"
    assert eval_run.variant["prompt"] == {"node": "llm_1", "from": "", "to": "greet", "version": 1}
    label = "v1 + model other-echo for echo + prompt greet v1 in llm_1"
    assert variant_label(1, eval_run.variant) == label
    assert label in client.get(url("eval-detail", dataset.slug, eval_run.id)).content.decode()


def test_a_swap_that_fails_the_graph_check_is_refused_and_stores_nothing(
    client, flow, workspace, owner
):
    # The prompt needs an input the flow does not feed the node.
    version = library_prompt(workspace, owner, template="{{message}} in {{language}}")
    dataset = make_dataset(workspace, owner, flow, ["Ann"])
    client.force_login(owner)
    response = client.post(
        url("eval-new", dataset.slug), form(flow, swap_prompt_node="llm_1", swap_prompt=version.id)
    )
    page = response.content.decode()
    assert response.status_code == 400 and "does not pass its check" in page
    assert "language" in page
    assert not EvalRun.objects.exists() and not variants_of(flow)


# --- what a member may not swap in ----------------------------------------------------------


@pytest.fixture
def limited(make_member, flow, owner):
    member = make_member("editor", limited=True)
    object_grant(obj=flow, subject=member, level="edit", actor=owner)
    return member


def refused(client, dataset, flow, **swap):
    response = client.post(url("eval-new", dataset.slug), form(flow, **swap))
    assert response.status_code == 400
    assert not EvalRun.objects.exists() and not variants_of(flow)
    return response.content.decode()


def test_a_model_or_prompt_the_member_may_not_use_is_refused(
    client, limited, flow, workspace, owner, other_model, outsider
):
    dataset = make_dataset(workspace, owner, flow, ["Ann"])
    secret = library_prompt(workspace, owner, slug="secret")
    foreign = model_create(
        slug="foreign", name="Foreign", engine="echo", workspace=Workspace.objects.get(slug="other")
    )
    client.force_login(limited)
    page = client.get(url("eval-new", dataset.slug)).content.decode()
    assert "other-echo" not in page and "foreign" not in page and "secret v1" not in page
    # Not shared with them, of another workspace, a prompt not shared: none is a choice.
    for slug in ("other-echo", foreign.slug):
        page = refused(client, dataset, flow, swap_model_node="llm_1", swap_model=slug)
        assert "Select a valid choice" in page
    page = refused(client, dataset, flow, swap_prompt_node="llm_1", swap_prompt=secret.id)
    assert "Select a valid choice" in page
    page = refused(client, dataset, flow, swap_model_node="input_1", swap_model="echo")
    assert "Select a valid choice" in page
    page = refused(client, dataset, flow, swap_model_node="llm_1")
    assert "Choose both the node and the model" in page


def test_the_service_refuses_what_the_form_would_not_offer(
    limited, flow, workspace, owner, other_model, outsider
):
    dataset = make_dataset(workspace, owner, flow, ["Ann"])
    secret = library_prompt(workspace, owner, slug="secret")
    theirs = library_prompt(Workspace.objects.get(slug="other"), outsider, slug="theirs")
    base = flow.published_version
    attempts = [
        ("swap_model", limited, Swap(model_node="llm_1", model="other-echo")),
        ("swap_model", owner, Swap(model_node="llm_1", model="no-such-model")),
        ("swap_prompt", limited, Swap(prompt_node="llm_1", prompt_version=secret)),
        ("swap_prompt", owner, Swap(prompt_node="llm_1", prompt_version=theirs)),
        ("swap_model_node", owner, Swap(model_node="input_1", model="echo")),
        ("swap_prompt_node", owner, Swap(prompt_node="output_1", prompt_version=secret)),
    ]
    for field, actor, swap in attempts:
        with pytest.raises(ValidationError) as caught:
            eval_variant_start(dataset=dataset, evaluators=EXACT, base=base, swap=swap, actor=actor)
        assert field in caught.value.message_dict, (field, caught.value)
    assert not EvalRun.objects.exists() and not variants_of(flow)
    assert Prompt.objects.filter(slug="secret").exists()


def test_a_prompt_draft_is_never_swapped_in(client, flow, workspace, owner):
    draft = prompt_version_create(
        prompt=library_prompt(workspace, owner).prompt, system="", template="{{message}}!"
    )
    dataset = make_dataset(workspace, owner, flow, ["Ann"])
    client.force_login(owner)
    assert f'value="{draft.id}"' not in client.get(url("eval-new", dataset.slug)).content.decode()
    refused(client, dataset, flow, swap_prompt_node="llm_1", swap_prompt=draft.id)
