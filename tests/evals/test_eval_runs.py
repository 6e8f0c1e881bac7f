"""Evaluation runs: a flow version over a dataset's cases through the real worker (the echo
model with exact match and contains, a judge scripted at the network boundary, the bundled CPU
model), the tick that neither starts a run twice nor scores a case twice, the pages with their
progress, and who may do what (403, 404, 405)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.services import agent_create, agent_draft_save, agent_publish
from catalog.models import Usage
from catalog.services import model_create
from catalog.services.prompts import prompt_create
from evals.models import EvalCaseResult, EvalRun, EvalStatus
from evals.schemas import CaseData
from evals.services import (
    EVAL_PARALLEL,
    EVAL_STALE_S,
    case_add,
    dataset_create,
    eval_run_start,
    eval_run_step,
    eval_run_tick,
    eval_runs_resume,
)
from flows.models import Run, RunSource, RunStatus
from tests.agents.scripted_model import ScriptedModel, answer
from workspaces.sharing import object_grant

CHECKS = [{"kind": "exact_match"}, {"kind": "contains", "config": {"phrases": ["Hello"]}}]


def url(name: str, *args) -> str:
    return reverse(f"evals:{name}", args=args)


def make_dataset(workspace, owner, flow, messages, expected=None):
    dataset = dataset_create(
        workspace=workspace, name="Smoke", slug="smoke", target=flow, actor=owner
    )
    for i, message in enumerate(messages):
        want = expected[i] if expected else message
        case_add(dataset=dataset, data=CaseData(inputs={"message": message}, expected_output=want))
    return dataset


def wait_for_eval(eval_run: EvalRun, timeout: float = 90) -> EvalRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        eval_run.refresh_from_db()
        if eval_run.is_ended:
            return eval_run
        time.sleep(0.1)
    raise AssertionError(f"evaluation still {eval_run.status} ({eval_run.completed} done)")


def start(dataset, flow, owner, evaluators=CHECKS) -> EvalRun:
    return eval_run_start(
        dataset=dataset, evaluators=evaluators, flow_version=flow.published_version, actor=owner
    )


# --- through the real worker ----------------------------------------------------------------


def test_an_evaluation_runs_every_case_on_the_worker_and_scores_it(
    worker, client, make_flow, echo_model, workspace, owner
):
    flow = make_flow(echo_model)
    messages = ["Hello world", "Hello there", "Goodbye", "Hello again", "Bye now", "Hello"]
    expected = messages[:-1] + ["Hi"]
    dataset = make_dataset(workspace, owner, flow, messages, expected)
    eval_run = wait_for_eval(start(dataset, flow, owner))

    assert (eval_run.status, eval_run.completed, eval_run.total) == (EvalStatus.DONE, 6, 6)
    assert eval_run.dataset_version.number == 1  # the current cases, frozen
    results = list(eval_run.results.select_related("run"))
    assert all(r.run.source == RunSource.STUDIO and r.run.created_by == owner for r in results)
    assert all(r.run.flow_version_id == flow.published_version_id for r in results)
    assert [r.output for r in results] == messages
    assert all(r.tokens > 0 and r.latency_ms > 0 and not r.error for r in results)
    exact = [r.scores[0]["passed"] for r in results]
    assert exact == [True] * 5 + [False]
    contains = [r.scores[1]["passed"] for r in results]
    assert contains == [True, True, False, True, False, True]
    by_kind = {a["kind"]: a for a in eval_run.aggregates}
    assert by_kind["exact_match"]["pass_rate"] == pytest.approx(5 / 6)
    assert by_kind["contains"]["mean"] == pytest.approx(4 / 6)

    client.force_login(owner)
    page = client.get(url("eval-detail", dataset.slug, eval_run.id)).content.decode()
    assert "<progress" in page and 'max="6" value="6"' in page
    assert "every 2s" not in page  # ended: the page stops polling
    assert (
        page.count("data-case=") == 6
        and reverse("flows:run-detail", args=[results[0].run_id]) in page
    )
    listed = client.get(url("eval-list", dataset.slug)).content.decode()
    assert f'data-eval="{eval_run.id}"' in listed


@pytest.fixture
def judge_server():
    scripted = ScriptedModel().start()
    yield scripted
    scripted.stop()


def test_a_judge_scripted_at_the_network_boundary_scores_on_the_worker(
    worker_may_call_loopback,
    transactional_db,
    judge_server,
    make_flow,
    echo_model,
    workspace,
    owner,
):
    model_create(
        slug="judge",
        name="Judge",
        engine="openai_compatible",
        weights="served-model",
        settings={"base_url": f"{judge_server.url}/v1", "retries": 0},
        workspace=workspace,
        actor=owner,
    )
    judge_server.plan(
        answer('{"score": 5, "reason": "Right."}'), answer('{"score": 1, "reason": "Wrong."}')
    )
    flow = make_flow(echo_model)
    dataset = make_dataset(workspace, owner, flow, ["Paris"], ["Paris"])
    case_add(dataset=dataset, data=CaseData(inputs={"message": "Lyon"}, expected_output="Paris"))
    judge = [{"kind": "llm_judge", "config": {"model": "judge", "rubric": "Is it the capital?"}}]
    eval_run = wait_for_eval(start(dataset, flow, owner, judge))
    assert eval_run.status == EvalStatus.DONE
    scores = sorted(r.scores[0]["value"] for r in eval_run.results.all())
    reasons = [r.scores[0]["reason"] for r in eval_run.results.all()]
    assert scores == [0.0, 1.0], reasons
    assert eval_run.aggregates[0]["pass_rate"] == 0.5
    metered = Usage.objects.filter(model_slug="judge", source="evaluation")
    assert metered.count() == 2 and {u.user_id for u in metered} == {owner.id}
    assert "Is it the capital?" in judge_server.messages(0)[0]["content"]


def test_an_evaluation_with_the_bundled_cpu_model(worker, make_flow, tiny_model, workspace, owner):
    flow = make_flow(tiny_model, max_tokens=8)
    dataset = make_dataset(workspace, owner, flow, ["Hi", "Tell me a story"])
    eval_run = wait_for_eval(
        start(dataset, flow, owner, [{"kind": "contains", "config": {"phrases": ["a"]}}])
    )
    assert (eval_run.status, eval_run.completed) == (EvalStatus.DONE, 2)
    for result in eval_run.results.all():
        assert result.run.status == RunStatus.SUCCEEDED and not result.error
        assert result.tokens > 0 and len(result.scores) == 1


# --- the tick, without a worker -------------------------------------------------------------


def score_now(coro):
    return asyncio.run(coro)


def finish_runs(eval_run: EvalRun, text: str = "Hello") -> None:
    started = eval_run.results.filter(run__isnull=False).values_list("run_id", flat=True)
    Run.objects.filter(id__in=list(started)).exclude(status=RunStatus.SUCCEEDED).update(
        status=RunStatus.SUCCEEDED, outputs={"text": text}, finished_at=timezone.now()
    )


def test_a_repeated_step_or_tick_never_starts_a_run_or_scores_a_case_twice(
    make_flow, echo_model, workspace, owner, monkeypatch
):
    monkeypatch.setattr("evals.services._tick_send", lambda *a, **k: None)
    flow = make_flow(echo_model)
    dataset = make_dataset(workspace, owner, flow, [f"Hello {i}" for i in range(6)], ["Hello"] * 6)
    eval_run = start(dataset, flow, owner)
    assert eval_run_tick(eval_run.id, 0, score_now) is True
    assert eval_run_tick(eval_run.id, 0, score_now) is False  # redelivered: a no-op
    eval_run_step(eval_run.id, score_now)
    assert Run.objects.filter(eval_result__eval_run=eval_run).count() == EVAL_PARALLEL
    finish_runs(eval_run)
    eval_run_step(eval_run.id, score_now)
    scored = dict(eval_run.results.filter(scored_at__isnull=False).values_list("id", "scored_at"))
    assert len(scored) == EVAL_PARALLEL
    eval_run_step(eval_run.id, score_now)  # nothing newly ended: nothing scored again
    again = dict(eval_run.results.filter(scored_at__isnull=False).values_list("id", "scored_at"))
    assert again == scored
    assert Run.objects.filter(eval_result__eval_run=eval_run).count() == 6
    finish_runs(eval_run)
    assert eval_run_step(eval_run.id, score_now) is True
    eval_run.refresh_from_db()
    assert (eval_run.status, eval_run.completed) == (EvalStatus.DONE, 6)
    assert eval_run.aggregates[0]["pass_rate"] == 1.0
    assert Run.objects.filter(eval_result__eval_run=eval_run).count() == 6
    assert EvalCaseResult.objects.filter(eval_run=eval_run).count() == 6


def test_inputs_the_flow_refuses_fail_their_case_only(
    make_flow, echo_model, workspace, owner, monkeypatch
):
    monkeypatch.setattr("evals.services._tick_send", lambda *a, **k: None)
    flow = make_flow(echo_model)
    dataset = make_dataset(workspace, owner, flow, ["Hello"])
    case_add(dataset=dataset, data=CaseData(inputs={"nope": "x"}, expected_output="x"))
    eval_run = start(dataset, flow, owner)
    eval_run_step(eval_run.id, score_now)
    finish_runs(eval_run)
    assert eval_run_step(eval_run.id, score_now) is True
    eval_run.refresh_from_db()
    assert (eval_run.completed, eval_run.errored) == (2, 1)
    assert "unknown inputs: nope" in eval_run.results.get(index=1).error


# --- the pages and who may use them ---------------------------------------------------------


@pytest.fixture
def dataset(make_flow, echo_model, workspace, owner):
    return make_dataset(workspace, owner, make_flow(echo_model), ["Hello"])


def test_the_form_starts_an_evaluation_and_checks_evaluator_settings(
    client, owner, dataset, monkeypatch
):
    monkeypatch.setattr("evals.services._tick_send", lambda *a, **k: None)
    client.force_login(owner)
    page = client.get(url("eval-new", dataset.slug))
    assert page.status_code == 200 and "Exact match" in page.content.decode()
    version = dataset.flow.published_version_id
    bad = client.post(
        url("eval-new", dataset.slug),
        {
            "cases": "current",
            "flow_version": version,
            "evaluators": ["regex"],
            "config_regex": "{}",
        },
    )
    assert bad.status_code == 400 and not EvalRun.objects.exists()
    not_json = client.post(
        url("eval-new", dataset.slug),
        {
            "cases": "current",
            "flow_version": version,
            "evaluators": ["contains"],
            "config_contains": "{",
        },
    )
    assert not_json.status_code == 400 and "Not JSON" in not_json.content.decode()
    response = client.post(
        url("eval-new", dataset.slug),
        {"cases": "current", "flow_version": version, "evaluators": ["exact_match"]},
    )
    eval_run = EvalRun.objects.get()
    assert response.status_code == 302 and response.url == url(
        "eval-detail", dataset.slug, eval_run.id
    )
    assert eval_run.evaluators[0]["kind"] == "exact_match" and eval_run.created_by == owner
    page = client.get(url("eval-detail", dataset.slug, eval_run.id)).content.decode()
    assert 'hx-trigger="every 2s"' in page
    partial = client.get(url("eval-detail", dataset.slug, eval_run.id), HTTP_HX_REQUEST="true")
    assert partial.content.decode().lstrip().startswith('<section id="eval-live"')
    assert client.post(url("eval-cancel", dataset.slug, eval_run.id)).status_code == 302
    eval_run.refresh_from_db()
    assert eval_run.status == EvalStatus.CANCELLED


def test_a_viewer_reads_but_may_not_start_or_cancel(client, viewer, owner, dataset, monkeypatch):
    monkeypatch.setattr("evals.services._tick_send", lambda *a, **k: None)
    eval_run = start(dataset, dataset.flow, owner, [{"kind": "exact_match"}])
    client.force_login(viewer)
    assert client.get(url("eval-detail", dataset.slug, eval_run.id)).status_code == 200
    assert client.get(url("eval-list", dataset.slug)).status_code == 200
    assert client.get(url("eval-new", dataset.slug)).status_code == 403
    assert client.post(url("eval-new", dataset.slug), {}).status_code == 403
    assert client.post(url("eval-cancel", dataset.slug, eval_run.id)).status_code == 403
    eval_run.refresh_from_db()
    assert eval_run.status == EvalStatus.QUEUED and EvalRun.objects.count() == 1


def test_another_workspace_gets_404_and_wrong_methods_405(
    client, outsider, owner, dataset, monkeypatch
):
    monkeypatch.setattr("evals.services._tick_send", lambda *a, **k: None)
    eval_run = start(dataset, dataset.flow, owner, [{"kind": "exact_match"}])
    client.force_login(outsider)
    for response in (
        client.get(url("eval-detail", dataset.slug, eval_run.id)),
        client.get(url("eval-list", dataset.slug)),
        client.post(url("eval-new", dataset.slug), {}),
        client.post(url("eval-cancel", dataset.slug, eval_run.id)),
    ):
        assert response.status_code == 404
    client.force_login(owner)
    assert client.get(url("eval-detail", dataset.slug, eval_run.id + 1)).status_code == 404
    assert client.get(url("eval-cancel", dataset.slug, eval_run.id)).status_code == 405
    assert client.post(url("eval-detail", dataset.slug, eval_run.id)).status_code == 405
    assert client.post(url("eval-list", dataset.slug)).status_code == 405


def test_a_chain_whose_tick_was_lost_is_resumed_once(
    make_flow, echo_model, workspace, owner, monkeypatch
):
    sent = []
    monkeypatch.setattr("evals.services._tick_send", lambda *args, **kw: sent.append(args))
    flow = make_flow(echo_model)
    eval_run = start(make_dataset(workspace, owner, flow, ["Hello"]), flow, owner)
    assert eval_runs_resume() == 0  # ticked just now
    EvalRun.objects.filter(id=eval_run.id).update(
        ticked_at=timezone.now() - timedelta(seconds=EVAL_STALE_S + 1)
    )
    assert eval_runs_resume() == 1 and sent == [(eval_run.id, 1)]
    assert eval_runs_resume() == 0
    assert eval_run_tick(eval_run.id, 0, score_now) is False  # the lost chain's token is dead
    assert eval_run_tick(eval_run.id, 1, score_now) is True


def test_an_agents_dataset_evaluates_its_published_version(
    client, echo_model, workspace, owner, monkeypatch
):
    monkeypatch.setattr("evals.services._tick_send", lambda *a, **k: None)
    agent = agent_create(workspace=workspace, name="Helper", slug="helper", actor=owner)
    agent_draft_save(agent=agent, spec={"model": echo_model.slug}, actor=owner)
    agent_publish(agent=agent, actor=owner)
    agent.refresh_from_db()
    dataset = dataset_create(workspace=workspace, name="A", slug="a", target=agent, actor=owner)
    case_add(dataset=dataset, data=CaseData(inputs={"message": "Hello"}, expected_output="x"))
    client.force_login(owner)
    version = agent.flow.published_version
    response = client.post(
        url("eval-new", dataset.slug),
        {"cases": "current", "flow_version": version.id, "evaluators": ["exact_match"]},
    )
    assert response.status_code == 302
    eval_run = EvalRun.objects.get()
    assert (eval_run.flow_id, eval_run.flow_version_id) == (agent.flow_id, version.id)
    eval_run_step(eval_run.id, score_now)
    assert eval_run.results.get().run.flow_version_id == version.id


def test_a_judge_model_the_member_may_not_use_is_refused(
    client, make_member, dataset, workspace, owner
):
    model_create(slug="judge", name="Judge", engine="echo", workspace=workspace, actor=owner)
    member = make_member("editor", limited=True)
    object_grant(obj=dataset.flow, subject=member, level="edit", actor=owner)
    client.force_login(member)
    response = client.post(
        url("eval-new", dataset.slug),
        {
            "cases": "current",
            "flow_version": dataset.flow.published_version_id,
            "evaluators": ["llm_judge"],
            "config_llm_judge": '{"model": "judge"}',
        },
    )
    assert response.status_code == 400 and not EvalRun.objects.exists()
    assert "you may not use the model" in response.content.decode()


def test_a_judge_rubric_from_a_prompt_the_member_may_not_use_is_refused(
    client, make_member, dataset, workspace, owner
):
    # The judge's model is theirs to use; the library prompt holding the rubric is not.
    prompt_create(
        workspace=workspace,
        slug="secret-rubric",
        name="Secret",
        template="Judge: {{x}}",
        actor=owner,
    )
    member = make_member("editor", limited=True)
    object_grant(obj=dataset.flow, subject=member, level="edit", actor=owner)
    client.force_login(member)
    response = client.post(
        url("eval-new", dataset.slug),
        {
            "cases": "current",
            "flow_version": dataset.flow.published_version_id,
            "evaluators": ["llm_judge"],
            "config_llm_judge": '{"prompt": "secret-rubric"}',
        },
    )
    assert response.status_code == 400 and not EvalRun.objects.exists()
    assert "you may not use the prompt" in response.content.decode()
