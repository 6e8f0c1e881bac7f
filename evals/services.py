"""Writes of datasets and their cases.

Creating and deleting a dataset, an import and a new version are audited in their own
transaction; a single case added, edited or deleted by hand is not (the audit log would fill
with test data). Callers have checked access (``evals.access``) and validated input
(``evals.schemas``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Sum
from django.utils import timezone
from pydantic import ValidationError as PydanticError

from agents.models import Agent
from catalog.models import Usage
from conversations.models import Message
from conversations.services import run_answer, run_citations
from evals.evaluators import Context, Output, Score, evaluator
from evals.models import (
    EVAL_ENDED,
    Case,
    CaseOrigin,
    Dataset,
    DatasetVersion,
    EvalCaseResult,
    EvalRun,
    EvalStatus,
)
from evals.schemas import CaseData
from evals.transfer import case_data
from evals.variants import Swap, variant_graph
from flows.models import TERMINAL, Flow, FlowVersion, Run, RunSource, RunStatus
from flows.services import run_create, run_fail
from flows.services.versions import flow_variant_create
from studio.celery import app
from workers import queues
from workspaces.audit import audit_record
from workspaces.models import Workspace

# A dataset's working set; a version freezes a copy, so this bounds those too.
MAX_CASES = 5_000


def _audit(dataset: Dataset, actor: Any, action: str, **after: Any) -> None:
    audit_record(
        workspace=dataset.workspace_id,
        actor=actor,
        action=f"dataset.{action}",
        target=dataset,
        after={"slug": dataset.slug, **after},
    )


def dataset_create(
    *,
    workspace: Workspace,
    name: str,
    slug: str,
    target: Flow | Agent,
    description: str = "",
    actor: Any = None,
) -> Dataset:
    """A dataset for ``target``; ValidationError when the slug is taken."""
    field = "agent" if isinstance(target, Agent) else "flow"
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                workspace=workspace,
                name=name.strip(),
                slug=slug,
                description=description,
                created_by=actor,
                **{field: target},
            )
            _audit(dataset, actor, "create", target=f"{field}:{target.slug}")
    except IntegrityError:
        raise ValidationError({"slug": f"This workspace already has a dataset {slug!r}."}) from None
    return dataset


def dataset_delete(*, dataset: Dataset, actor: Any = None) -> None:
    with transaction.atomic():
        _audit(dataset, actor, "delete", cases=dataset.cases.count())
        dataset.delete()


def _room_check(dataset: Dataset, adding: int) -> None:
    if dataset.cases.count() + adding > MAX_CASES:
        raise ValidationError(f"A dataset holds at most {MAX_CASES} cases.")


def case_add(
    *, dataset: Dataset, data: CaseData, origin: str = CaseOrigin.MANUAL, origin_run: str = ""
) -> Case:
    _room_check(dataset, 1)
    return Case.objects.create(
        dataset=dataset, origin=origin, origin_run=origin_run, **data.model_dump()
    )


def case_update(*, case: Case, data: CaseData) -> Case:
    for name, value in data.model_dump().items():
        setattr(case, name, value)
    case.save()
    return case


def case_delete(*, case: Case) -> None:
    case.delete()


def cases_import(*, dataset: Dataset, cases: list[CaseData], actor: Any = None) -> int:
    """Add every case or none (one transaction); returns how many were added."""
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=dataset.pk)
        _room_check(dataset, len(cases))
        Case.objects.bulk_create(
            Case(dataset=dataset, origin=CaseOrigin.IMPORT, **c.model_dump()) for c in cases
        )
        _audit(dataset, actor, "import", cases=len(cases))
    return len(cases)


def case_from_run(*, dataset: Dataset, run: Run, actor: Any = None) -> Case:
    """A case from a finished run: its inputs, its answer as the expected output and the
    documents it cited as the expected sources (to be reviewed by hand: a run is not always
    right). A run whose answer was rated is a feedback case; a bad rating keeps the answer out
    of the expected output and puts the rater's comment in the criteria."""
    if not run.is_terminal:
        raise ValidationError("The run has not finished yet.")
    sources = list(dict.fromkeys(c["document"] for c in run_citations(run) if c["document"]))
    rated = Message.objects.filter(run=run, feedback__isnull=False).first()
    bad = rated is not None and rated.feedback < 0
    criteria = f"Rated bad: {rated.feedback_comment}".strip(": ") if bad else ""
    data = CaseData(
        inputs=run.inputs,
        expected_output="" if bad else run_answer(run)[:20_000],
        criteria=criteria[:20_000],
        expected_sources=sources[:50],
    )
    origin = CaseOrigin.FEEDBACK if rated else CaseOrigin.RUN
    return case_add(dataset=dataset, data=data, origin=origin, origin_run=str(run.id))


def dataset_version_create(
    *, dataset: Dataset, note: str = "", actor: Any = None
) -> DatasetVersion:
    """Freeze the working set as the next version. The dataset row is locked so that two
    snapshots at once get consecutive numbers."""
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=dataset.pk)
        cases = list(dataset.cases.order_by("id"))
        if not cases:
            raise ValidationError("Add cases before making a version.")
        last = dataset.versions.aggregate(n=Max("number"))["n"] or 0
        version = DatasetVersion.objects.create(
            dataset=dataset,
            number=last + 1,
            note=note[:500],
            cases=[{"case_id": c.id, **case_data(c).model_dump()} for c in cases],
            created_by=actor,
        )
        _audit(dataset, actor, "version", number=version.number, cases=len(cases))
    return version


# --- evaluation runs --------------------------------------------------------------------------

# How many of an evaluation's flow runs are in flight at once, and how often its tick looks.
EVAL_PARALLEL = 4
EVAL_TICK_S = 1.0
EVAL_TICK_TASK = "workers.tasks.eval_run_tick"
# The tick's hard time limit; a chain quiet for longer than this (and a margin) is resumed.
EVAL_TICK_LIMIT_S = 600
EVAL_STALE_S = EVAL_TICK_LIMIT_S + 60


def evaluators_clean(chosen: list[dict]) -> list[dict]:
    """``[{"kind", "config"}]`` with each config checked (and defaulted) by its evaluator's
    pydantic model; ValidationError naming the evaluator otherwise."""
    if not chosen:
        raise ValidationError("Choose at least one evaluator.")
    cleaned = []
    for item in chosen:
        kind = item.get("kind", "")
        try:
            built = evaluator(kind, item.get("config") or {})
        except LookupError as exc:
            raise ValidationError(str(exc)) from None
        except PydanticError as exc:
            raise ValidationError(f"{kind}: {exc.errors()[0]['msg']}") from None
        cleaned.append({"kind": kind, "config": built.config.model_dump(mode="json")})
    return cleaned


def eval_run_start(
    *,
    dataset: Dataset,
    evaluators: list[dict],
    version: DatasetVersion | None = None,
    flow_version: FlowVersion,
    actor: Any = None,
    base_version: FlowVersion | None = None,
    variant: dict | None = None,
) -> EvalRun:
    """An evaluation run of ``flow_version`` over ``version`` (the current cases, frozen into a
    new version, when None), with one pending result per case; its first tick is enqueued
    once committed. ``base_version`` and ``variant``: what ``flow_version`` was made from
    when it is an evaluation variant (``eval_variant_start``)."""
    chosen = evaluators_clean(evaluators)
    with transaction.atomic():
        if version is None:
            version = dataset_version_create(dataset=dataset, note="for an evaluation", actor=actor)
        eval_run = EvalRun.objects.create(
            workspace_id=dataset.workspace_id,
            dataset=dataset,
            dataset_version=version,
            flow_id=flow_version.flow_id,
            flow_version=flow_version,
            evaluators=chosen,
            base_version=base_version,
            variant=variant or {},
            total=len(version.cases),
            created_by=actor,
            ticked_at=timezone.now(),
        )
        EvalCaseResult.objects.bulk_create(
            EvalCaseResult(eval_run=eval_run, index=i, case_id=case.get("case_id"))
            for i, case in enumerate(version.cases)
        )
        swapped = {"variant": variant} if variant else {}
        _audit(dataset, actor, "evaluate", eval_run=eval_run.id, version=version.number, **swapped)
        transaction.on_commit(lambda: _tick_send(eval_run.id, 0, countdown=0))
    return eval_run


def eval_variant_start(
    *,
    dataset: Dataset,
    evaluators: list[dict],
    version: DatasetVersion | None = None,
    base: FlowVersion,
    swap: Swap,
    actor: Any = None,
) -> EvalRun:
    """An evaluation of ``base`` with ``swap``'s model or prompt swapped in, without saving or
    publishing a version of the flow: the swapped graph is stored as an unnumbered variant
    that only this evaluation runs. ValidationError keyed by the form's fields when ``actor``
    may not use what is swapped in or the node is not there; GraphError when the result fails
    the graph check. All or nothing: one transaction."""
    evaluators_clean(evaluators)  # refused before anything is stored
    graph, record = variant_graph(
        base=base, swap=swap, user=actor, workspace_id=dataset.workspace_id
    )
    with transaction.atomic():
        flow = Flow.objects.get(id=base.flow_id)
        stored = flow_variant_create(flow=flow, base=base, graph=graph, user=actor)
        return eval_run_start(
            dataset=dataset,
            evaluators=evaluators,
            version=version,
            flow_version=stored,
            actor=actor,
            base_version=base,
            variant=record,
        )


def _tick_send(eval_run_id: int, tick: int, countdown: float = EVAL_TICK_S) -> None:
    options = {"countdown": countdown} if countdown else {}
    app.send_task(EVAL_TICK_TASK, args=[eval_run_id, tick], queue=queues.INFERENCE, **options)


def eval_run_cancel(*, eval_run: EvalRun) -> bool:
    """Stop an evaluation: its runs still in flight fail, no more start. False if it had ended."""
    ended = (
        EvalRun.objects.filter(id=eval_run.id)
        .exclude(status__in=EVAL_ENDED)
        .update(status=EvalStatus.CANCELLED, finished_at=timezone.now())
    )
    if ended:
        in_flight = eval_run.results.filter(scored_at__isnull=True, run__isnull=False)
        for run_id in in_flight.values_list("run_id", flat=True):
            run_fail(run_id=run_id, reason="its evaluation was cancelled")
    return bool(ended)


def eval_run_tick(
    eval_run_id: int, tick: int, score: Callable[[Any], Any], engine_for=None
) -> bool:
    """One step of an evaluation, if the tick still holds the chain's token (a redelivered
    or stale tick does nothing). Enqueues the next tick unless the evaluation has ended.
    ``score(coro)``: runs an evaluator's coroutine to its end (on the worker's loop);
    ``engine_for``: the worker's resident engines, for evaluators that call a model."""
    held = EvalRun.objects.filter(id=eval_run_id, tick=tick)
    if not held.update(tick=tick + 1, ticked_at=timezone.now()):
        return False
    if not eval_run_step(eval_run_id, score, engine_for):
        _tick_send(eval_run_id, tick + 1)
    return True


def eval_runs_resume() -> int:
    """Send a fresh tick to every unfinished evaluation whose chain has been quiet for longer
    than a tick may last (its tick was lost with a worker, or killed at its time limit); the
    token moves on, so a late tick of the old chain does nothing. Returns how many resumed."""
    now = timezone.now()
    stale = EvalRun.objects.exclude(status__in=EVAL_ENDED).filter(
        ticked_at__lt=now - timedelta(seconds=EVAL_STALE_S)
    )
    resumed = 0
    for eval_run_id, tick in stale.values_list("id", "tick"):
        moved = stale.filter(id=eval_run_id, tick=tick).update(tick=tick + 1, ticked_at=now)
        if moved:
            _tick_send(eval_run_id, tick + 1, countdown=0)
            resumed += 1
    return resumed


def eval_run_step(eval_run_id: int, score: Callable[[Any], Any], engine_for=None) -> bool:
    """Score the cases whose runs ended, start runs for waiting cases up to ``EVAL_PARALLEL``
    in flight, count progress. Idempotent: a case is scored once, a run started once (rows
    are claimed under lock). True when the evaluation has ended."""
    eval_run = EvalRun.objects.select_related("flow", "flow_version", "dataset_version").get(
        id=eval_run_id
    )
    if eval_run.is_ended:
        return True
    if eval_run.status == EvalStatus.QUEUED:
        EvalRun.objects.filter(id=eval_run.id).update(
            status=EvalStatus.RUNNING, started_at=timezone.now()
        )
    _score_ended(eval_run, score, engine_for)
    _start_waiting(eval_run)
    return _count(eval_run)


def _score_ended(eval_run: EvalRun, score: Callable[[Any], Any], engine_for) -> None:
    ended = eval_run.results.filter(scored_at__isnull=True, run__status__in=TERMINAL)
    for result_id in ended.values_list("id", flat=True):
        with transaction.atomic():
            result = (
                EvalCaseResult.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(id=result_id, scored_at__isnull=True)
                .select_related("run")
                .first()
            )
            if result is None:
                continue  # scored, or being scored by another tick
            _score_one(eval_run, result, score, engine_for)


def _score_one(eval_run: EvalRun, result: EvalCaseResult, score, engine_for) -> None:
    run = result.run
    case = CaseData.model_validate(
        {k: v for k, v in eval_run.dataset_version.cases[result.index].items() if k != "case_id"}
    )
    usage = Usage.objects.filter(run_id=run.id).aggregate(
        i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost")
    )
    result.tokens = (usage["i"] or 0) + (usage["o"] or 0)
    result.cost = usage["c"] or Decimal("0")
    if run.finished_at:
        result.latency_ms = (run.finished_at - (run.started_at or run.created_at)).total_seconds()
        result.latency_ms *= 1000
    result.output = run_answer(run)[:100_000]
    if run.status != RunStatus.SUCCEEDED:
        result.error = run.error[:10_000] or f"the run ended {run.status}"
    else:
        context = Context(
            workspace_id=eval_run.workspace_id,
            engine_for=engine_for,
            usage={"user_id": eval_run.created_by_id, "flow_id": eval_run.flow_id},
            queue=queues.INFERENCE,
        )
        output = Output(text=result.output, sources=run_citations(run))
        result.scores = [
            _score_entry(item, case, output, context, score) for item in eval_run.evaluators
        ]
    result.scored_at = timezone.now()
    result.save()


def _score_entry(item: dict, case: CaseData, output: Output, context: Context, score) -> dict:
    try:
        got = score(evaluator(item["kind"], item["config"]).score(case, output, context))
    except Exception as exc:  # an evaluator bug fails its score, not the evaluation
        got = Score.failed(f"the evaluator failed: {exc}")
    return {"kind": item["kind"], "value": got.value, "passed": got.passed, "reason": got.reason}


def _start_waiting(eval_run: EvalRun) -> None:
    in_flight = eval_run.results.filter(scored_at__isnull=True, run__isnull=False).count()
    room = EVAL_PARALLEL - in_flight
    if room <= 0:
        return
    with transaction.atomic():
        waiting = (
            EvalCaseResult.objects.select_for_update(skip_locked=True)
            .filter(eval_run=eval_run, run__isnull=True, scored_at__isnull=True)
            .order_by("index")[:room]
        )
        for result in waiting:
            case = eval_run.dataset_version.cases[result.index]
            try:
                with transaction.atomic():
                    result.run = run_create(
                        flow=eval_run.flow,
                        version=eval_run.flow_version,
                        inputs=case.get("inputs") or {},
                        source=RunSource.STUDIO,
                        user=eval_run.created_by,
                    )
                result.save(update_fields=["run"])
            except ValidationError as exc:  # inputs the flow refuses: the case fails
                result.error = "; ".join(exc.messages)
                result.scored_at = timezone.now()
                result.save(update_fields=["error", "scored_at"])


def _count(eval_run: EvalRun) -> bool:
    """Progress and aggregates, written in one UPDATE; the evaluation ends once every case is
    scored. True when it has ended."""
    results = list(eval_run.results.filter(scored_at__isnull=False).values("scores", "error"))
    aggregates = []
    for i, item in enumerate(eval_run.evaluators):
        scored = [r["scores"][i] for r in results if len(r["scores"]) > i]
        count = len(scored)
        aggregates.append(
            {
                "kind": item["kind"],
                "count": count,
                "mean": sum(s["value"] for s in scored) / count if count else None,
                "pass_rate": sum(1 for s in scored if s["passed"]) / count if count else None,
            }
        )
    done = len(results) >= eval_run.total
    changes: dict[str, Any] = {
        "completed": len(results),
        "errored": sum(1 for r in results if r["error"]),
        "aggregates": aggregates,
    }
    if done:
        changes |= {"status": EvalStatus.DONE, "finished_at": timezone.now()}
    ended = EvalRun.objects.filter(id=eval_run.id).exclude(status__in=EVAL_ENDED)
    return not ended.update(**changes) or done
