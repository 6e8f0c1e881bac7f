"""Two evaluation runs of a dataset compared: the form that picks them, the side by side page,
and the panel of the flow's publish page that shows the flow's latest comparison."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_http_methods

from evals import comparison_store
from evals.access import access_dataset, datasets_scope
from evals.comparison import Comparison, run_label
from evals.models import EvalComparison, EvalRun
from flows.models import Flow
from workspaces.access import current_workspace
from workspaces.models import Workspace

# The case filters of the comparison page: every changed case, or those fixed or broken.
SHOWN = {"all": "All changed", "broke": "Broke", "fixed": "Fixed"}
# Changed cases listed on one page; the counts above the list still count them all.
MAX_SHOWN = 500
# Finished evaluations offered to compare, newest first.
MAX_OFFERED = 200


def _run_id(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _picked(request: HttpRequest, workspace: Workspace, run_id: int | None, role: str) -> EvalRun:
    """An evaluation the member may read, by id: one of another workspace or of a dataset they
    may not read is as good as missing (Http404); the service then refuses other datasets'."""
    if run_id is None:
        raise ValidationError(f"Pick the {role} evaluation.")
    visible = datasets_scope(request.user, workspace.id, "view")
    found = (
        EvalRun.objects.filter(id=run_id, workspace=workspace, dataset__in=visible)
        .select_related("flow_version", "base_version")
        .first()
    )
    if found is None:
        raise Http404
    return found


@login_required
@require_http_methods(["GET", "POST"])
def comparison_new(request: HttpRequest, dataset_slug: str) -> HttpResponse:
    """GET: pick two finished evaluations (``?baseline=&candidate=`` preselect). POST: keep the
    comparison and show it; picking needs what starting an evaluation needs."""
    workspace = current_workspace(request)
    dataset = access_dataset(request.user, workspace, dataset_slug, "change")
    data = request.POST if request.method == "POST" else request.GET
    chosen = {role: _run_id(data.get(role)) for role in ("baseline", "candidate")}
    errors: list[str] = []
    if request.method == "POST":
        try:
            kept = comparison_store.eval_comparison_create(
                dataset=dataset,
                baseline=_picked(request, workspace, chosen["baseline"], "baseline"),
                candidate=_picked(request, workspace, chosen["candidate"], "candidate"),
                actor=request.user,
            )
        except ValidationError as exc:
            errors = exc.messages
        else:
            return redirect("evals:comparison-detail", dataset.slug, kept.id)
    runs = list(comparison_store.runs_finished(dataset)[:MAX_OFFERED])
    if request.method == "GET" and len(runs) >= 2:
        chosen = _default_pair([run.id for run in runs], chosen)
    context = {
        "workspace": workspace,
        "dataset": dataset,
        "runs": [(run, run_label(run)) for run in runs],
        "chosen": chosen,
        "errors": errors,
    }
    status = 400 if errors else 200
    return render(request, "evals/comparison_new.html", context, status=status)


def _default_pair(ids: list[int], chosen: dict[str, int | None]) -> dict[str, int | None]:
    """The usual question: did an evaluation (the newest, unless one is named) do better than
    the one before it? ``ids`` newest first."""
    candidate = chosen["candidate"] or ids[0]
    if chosen["baseline"]:
        return {"baseline": chosen["baseline"], "candidate": candidate}
    after = ids[ids.index(candidate) + 1 :] if candidate in ids else ids
    older = [i for i in after if i != candidate] or [i for i in ids if i != candidate]
    return {"baseline": older[0], "candidate": candidate}


def _rows(kept: EvalComparison, comparison: Comparison, which: str) -> list[dict]:
    """The cases to list, each with the case's inputs and expected output as the baseline's
    dataset version froze them (the candidate's for a case only it has)."""
    frozen = {
        "baseline": kept.baseline.dataset_version.cases,
        "candidate": kept.candidate.dataset_version.cases,
    }
    rows = []
    for pair in comparison.shown(which)[:MAX_SHOWN]:
        side, outcome = (
            ("baseline", pair.baseline) if pair.baseline else ("candidate", pair.candidate)
        )
        cases = frozen[side]
        case = cases[outcome.index] if outcome and outcome.index < len(cases) else {}
        rows.append({"pair": pair, "case": case})
    return rows


@login_required
@require_GET
def comparison_detail(request: HttpRequest, dataset_slug: str, comparison_id: int) -> HttpResponse:
    dataset = access_dataset(request.user, current_workspace(request), dataset_slug, "view")
    kept = comparison_store.dataset_comparison(dataset, comparison_id)
    if kept is None:
        raise Http404
    which = request.GET.get("show", "all")
    errors = []
    if which not in SHOWN:
        errors.append(f"There is no filter {which[:40]!r}: pick all, broke or fixed.")
        which = "all"
    comparison = comparison_store.comparison_build(kept)
    if comparison is None:
        raise Http404
    counts = _counts(comparison)
    context = {
        "workspace": dataset.workspace,
        "dataset": dataset,
        "kept": kept,
        "comparison": comparison,
        "rows": _rows(kept, comparison, which),
        "shown_total": len(comparison.shown(which)),
        "max_shown": MAX_SHOWN,
        "which": which,
        "filters": [(key, label, counts[key]) for key, label in SHOWN.items()],
        "counts": counts,
        "errors": errors,
    }
    status = 400 if errors else 200
    return render(request, "evals/comparison.html", context, status=status)


def _counts(comparison: Comparison) -> dict[str, int]:
    return {
        "all": len(comparison.changed),
        "fixed": comparison.count("fixed"),
        "broke": comparison.count("broke"),
    }


def publish_panel(request: HttpRequest, flow: Flow, actions: frozenset[str]) -> SafeString | None:
    """The flow's latest comparison on a dataset the member may read, in one line with a link;
    nothing when there is none. Answers are not loaded: the line shows none."""
    kept = comparison_store.flow_comparison_last(request.user, flow)
    if kept is None:
        return None
    comparison = comparison_store.comparison_build(kept, with_output=False)
    if comparison is None:
        return None
    context = {
        "kept": kept,
        "dataset": kept.baseline.dataset,
        "comparison": comparison,
        "headline": comparison.headline,
        "cost": comparison.total("Total cost"),
        "counts": _counts(comparison),
    }
    return render_to_string("evals/_publish_comparison.html", context, request=request)
