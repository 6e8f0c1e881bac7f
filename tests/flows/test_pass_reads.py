"""What a pass of the executor reads: the run once, with its access check on the locked row; no
results for a run that has none yet; the new results in one statement; and the model a node
kept by the pass borrows from the pass, which read it a moment before."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Model
from catalog.services import model_create
from flows.access import access_run_check
from flows.models import NodeResult, NodeStatus, Run, RunSource, RunStatus
from flows.nodes import model_call
from flows.nodes.base import NodeContext
from flows.nodes.llm import LlmConfig
from flows.runtime import executor
from flows.services import run_create
from workspaces.services import workspace_create


def _queue(flow, user=None) -> Run:
    return run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "hello"},
        source=RunSource.STUDIO,
        user=user,
    )


def _statements(queries: CaptureQueriesContext, prefix: str, table: str) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith(prefix) and f'"{table}"' in q["sql"]]


def test_the_first_pass_reads_the_run_once_and_writes_its_results_at_once(
    db, echo_model, make_flow
):
    run = _queue(make_flow(echo_model))
    executor.graph_of(run)  # the graph is read once per process: not this test's subject

    with CaptureQueriesContext(connection) as queries:
        kept = executor.run_advance(run.id, {"inference"}, check=access_run_check)

    assert [result.node_id for result in kept] == ["llm_1"]
    assert len(_statements(queries, "SELECT", "flows_run")) == 1
    # A queued run has no results yet: none are read.
    assert _statements(queries, "SELECT", "flows_noderesult") == []
    # The input node's result and the kept LLM node's claim, in one statement.
    assert len(_statements(queries, "INSERT", "flows_noderesult")) == 1
    stored = {r.node_id: r.status for r in NodeResult.objects.filter(run=run)}
    assert stored == {"input_1": NodeStatus.SUCCEEDED, "llm_1": NodeStatus.RUNNING}
    assert Run.objects.get(id=run.id).status == RunStatus.RUNNING


def test_a_pass_whose_check_refuses_fails_the_run_and_starts_nothing(db, echo_model, make_flow):
    run = _queue(make_flow(echo_model))

    def refuse(locked: Run) -> None:
        assert locked.id == run.id and locked.flow_id == run.flow_id  # the locked row, its flow
        raise PermissionDenied("the key was revoked")

    assert executor.run_advance(run.id, {"inference"}, check=refuse) == []

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "permission revoked: the key was revoked"
    assert not NodeResult.objects.filter(run=run).exists()


def test_the_pass_checks_the_starter_on_the_locked_run(db, echo_model, make_flow, owner):
    run = _queue(make_flow(echo_model), user=owner)
    owner.is_active = False
    owner.save(update_fields=["is_active"])

    assert executor.run_advance(run.id, {"inference"}, check=access_run_check) == []

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("permission revoked:")


def test_a_deleted_run_is_left_alone(db, echo_model, make_flow):
    run = _queue(make_flow(echo_model))
    Run.objects.filter(id=run.id).delete()

    assert executor.run_advance(run.id, {"inference"}, check=access_run_check) == []


def _ctx(workspace) -> NodeContext:
    async def emit(type_: str, data: dict) -> None:
        pass

    async def engine_for(model):
        raise AssertionError("resolving a target loads no engine")

    return NodeContext(
        run_id="run", node_id="llm_1", workspace_id=workspace.id, emit=emit, engine_for=engine_for
    )


def _resolved_name(workspace, config: LlmConfig) -> str:
    target = async_to_sync(model_call.resolve)(_ctx(workspace), config)
    return target.candidates[0].model.name


def test_a_node_borrows_the_model_its_pass_read_once(db, workspace, echo_model):
    config = LlmConfig(model=echo_model.slug)
    assert model_call.target_queue(config, workspace.id) == "inference"
    Model.objects.filter(id=echo_model.id).update(name="Renamed")

    # The first resolve takes the pass's read; the loan is then gone and the next one reads.
    assert _resolved_name(workspace, config) == echo_model.name
    assert _resolved_name(workspace, config) == "Renamed"


def test_a_stale_loan_is_read_again(db, workspace, echo_model, monkeypatch):
    monkeypatch.setattr(model_call, "_LENT_S", -1.0)
    config = LlmConfig(model=echo_model.slug)
    model_call.target_queue(config, workspace.id)
    Model.objects.filter(id=echo_model.id).update(name="Renamed")

    assert _resolved_name(workspace, config) == "Renamed"


def test_a_loan_serves_only_its_own_workspace(db, workspace):
    own = model_create(slug="own-echo", name="Own", engine="echo", workspace=workspace)
    other = workspace_create(slug="other", name="Other")
    config = LlmConfig(model=own.slug)
    model_call.target_queue(config, workspace.id)

    with pytest.raises(LookupError, match="not in this workspace"):
        async_to_sync(model_call.resolve)(_ctx(other), config)
