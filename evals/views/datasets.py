"""The evaluation pages: datasets, their cases (by hand, imported, from a run), export and
versions. Thin: check access (``evals.access``), validate, call a service, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from agents.models import Agent
from evals import selectors, services, variants
from evals.access import access_dataset, agents_for, evaluator_models_refused, flows_for
from evals.forms import CaseForm, DatasetForm, EvalRunForm, ImportForm, VersionForm
from evals.models import Case, Dataset, EvalRun
from evals.transfer import (
    MAX_FILE_BYTES,
    ImportRefused,
    cases_csv,
    cases_jsonl,
    cases_parse,
    too_big,
)
from flows.access import access_run
from flows.models import FlowVersion, VersionKind
from flows.schema import GraphError
from studio import access
from studio.htmx import render_page_or_partial
from workspaces.access import current_workspace


@login_required
@require_GET
def dataset_list(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    context = {
        "workspace": workspace,
        "datasets": selectors.datasets_visible(request.user, workspace.id),
        "can_add": bool(selectors.targets_changeable(request.user, workspace.id)),
    }
    return render(request, "evals/list.html", context)


def _target(request: HttpRequest, workspace_id: int, choice: str):
    kind, _, slug = choice.partition(":")
    found = (
        flows_for(request.user, workspace_id, "change")
        if kind == "flow"
        else agents_for(request.user, workspace_id, "change")
    )
    target = found.filter(slug=slug).first()
    if target is None:
        raise Http404  # gone since the form was shown
    return target


@login_required
@require_http_methods(["GET", "POST"])
def dataset_new(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    form = DatasetForm(request.POST or None, user=request.user, workspace_id=workspace.id)
    offered = {value for value, _ in form.fields["target"].choices}
    if not offered:
        raise PermissionDenied("You may not change any flow or agent to test.")
    if request.method == "POST" and request.POST.get("target") not in offered:
        raise Http404  # a flow or agent out of reach is as good as missing
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            dataset = services.dataset_create(
                workspace=workspace,
                name=data["name"],
                slug=data["slug"],
                target=_target(request, workspace.id, data["target"]),
                description=data["description"],
                actor=request.user,
            )
        except ValidationError as exc:
            form.add_error("slug", exc.message_dict.get("slug", exc.messages))
        else:
            return redirect("evals:dataset-detail", dataset.slug)
    status = 400 if form.errors else 200
    return render(request, "evals/new.html", {"workspace": workspace, "form": form}, status=status)


def _detail_context(request: HttpRequest, dataset: Dataset, **forms) -> dict:
    return {
        "workspace": dataset.workspace,
        "dataset": dataset,
        "cases": selectors.dataset_cases(dataset),
        "versions": selectors.dataset_versions(dataset),
        "can_change": "change" in access.object_actions(request.user, dataset.target),
        "case_form": forms.get("case_form") or CaseForm(),
        "import_form": forms.get("import_form") or ImportForm(),
        "import_errors": forms.get("import_errors", []),
        "version_form": VersionForm(),
        "max_file_mb": MAX_FILE_BYTES // 1024 // 1024,
    }


@login_required
@require_GET
def dataset_detail(request: HttpRequest, dataset_slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, current_workspace(request), dataset_slug, "view")
    return render(request, "evals/detail.html", _detail_context(request, dataset))


@login_required
@require_POST
def dataset_delete(request: HttpRequest, dataset_slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, current_workspace(request), dataset_slug, "change")
    services.dataset_delete(dataset=dataset, actor=request.user)
    messages.success(request, f"Deleted the dataset {dataset.name}.")
    return redirect("evals:dataset-list")


@login_required
@require_POST
def case_add(request: HttpRequest, dataset_slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, current_workspace(request), dataset_slug, "change")
    form = CaseForm(request.POST)
    if form.is_valid():
        try:
            services.case_add(dataset=dataset, data=form.cleaned_data["case"])
        except ValidationError as exc:
            form.add_error(None, exc.messages)
    if form.errors:
        context = _detail_context(request, dataset, case_form=form)
        return render(request, "evals/detail.html", context, status=400)
    messages.success(request, "Added the case.")
    return redirect("evals:dataset-detail", dataset.slug)


def _case(request: HttpRequest, dataset_slug: str, case_id: int, action: str) -> Case:
    dataset = access_dataset(request.user, current_workspace(request), dataset_slug, action)
    case = dataset.cases.filter(id=case_id).first()
    if case is None:
        raise Http404
    case.dataset = dataset
    return case


@login_required
@require_http_methods(["GET", "POST"])
def case_edit(request: HttpRequest, dataset_slug: str, case_id: int) -> HttpResponse:
    case = _case(request, dataset_slug, case_id, "change")
    form = CaseForm(request.POST or None, initial=CaseForm.initial_for(case))
    if request.method == "POST" and form.is_valid():
        services.case_update(case=case, data=form.cleaned_data["case"])
        messages.success(request, "Saved the case.")
        return redirect("evals:dataset-detail", case.dataset.slug)
    context = {"workspace": case.dataset.workspace, "dataset": case.dataset, "case": case}
    context["form"] = form
    return render(request, "evals/case.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def case_delete(request: HttpRequest, dataset_slug: str, case_id: int) -> HttpResponse:
    case = _case(request, dataset_slug, case_id, "change")
    services.case_delete(case=case)
    context = _detail_context(request, case.dataset)
    if request.htmx:
        return render_page_or_partial(request, "evals/detail.html", context, partial="cases")
    return redirect("evals:dataset-detail", case.dataset.slug)


@login_required
@require_POST
def dataset_import(request: HttpRequest, dataset_slug: str) -> HttpResponse:
    """All or nothing: a file with any bad row stores no case, and every bad row is listed."""
    dataset = access_dataset(request.user, current_workspace(request), dataset_slug, "change")
    form = ImportForm(request.POST, request.FILES)
    errors: list[str] = []
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            # Refused before reading when too big: an oversized upload is never held in memory.
            if upload.size > MAX_FILE_BYTES:
                raise ImportRefused([too_big()])
            cases = cases_parse(upload.name, upload.read())
            added = services.cases_import(dataset=dataset, cases=cases, actor=request.user)
        except ImportRefused as exc:
            errors = exc.errors
        except ValidationError as exc:
            errors = exc.messages
        else:
            messages.success(request, f"Imported {added} cases.")
            return redirect("evals:dataset-detail", dataset.slug)
    context = _detail_context(request, dataset, import_form=form, import_errors=errors)
    return render(request, "evals/detail.html", context, status=400)


@login_required
@require_GET
def dataset_export(request: HttpRequest, dataset_slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, current_workspace(request), dataset_slug, "view")
    cases = selectors.dataset_cases(dataset)
    if request.GET.get("format") == "csv":
        body, kind, ext = cases_csv(cases), "text/csv", "csv"
    else:
        body, kind, ext = cases_jsonl(cases), "application/jsonl", "jsonl"
    response = HttpResponse(body, content_type=f"{kind}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{dataset.slug}.{ext}"'
    return response


@login_required
@require_POST
def version_create(request: HttpRequest, dataset_slug: str) -> HttpResponse:
    dataset = access_dataset(request.user, current_workspace(request), dataset_slug, "change")
    form = VersionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        version = services.dataset_version_create(dataset=dataset, note=note, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Saved version {version.number} of the dataset.")
    return redirect("evals:dataset-detail", dataset.slug)


@login_required
@require_http_methods(["GET", "POST"])
def case_from_run(request: HttpRequest, run_id) -> HttpResponse:
    """GET: choose a dataset of the run's flow (or agent). POST: add the run as a case."""
    run = access_run(request.user, run_id, "view")
    datasets = selectors.datasets_for_run(request.user, run)
    if request.method == "POST":
        dataset = datasets.filter(slug=request.POST.get("dataset", "")).first()
        if dataset is None:
            raise Http404
        try:
            services.case_from_run(dataset=dataset, run=run, actor=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("flows:run-detail", run.id)
        messages.success(request, f"Added the run to {dataset.name}: review its expected output.")
        return redirect("evals:dataset-detail", dataset.slug)
    agent = Agent.objects.filter(flow=run.flow_id).first()
    context = {"workspace": run.workspace, "run": run, "datasets": datasets, "agent": agent}
    return render(request, "evals/from_run.html", context)


# --- evaluation runs --------------------------------------------------------------------------


def _flow_versions(dataset: Dataset) -> list[FlowVersion]:
    """The versions an evaluation of ``dataset`` may run: its flow's numbered versions, or its
    agent's published one (its backing flow's)."""
    if dataset.agent_id:
        flow = dataset.agent.flow if dataset.agent.flow_id else None
        return [flow.published_version] if flow and flow.published_version_id else []
    versions = dataset.flow.versions.filter(kind=VersionKind.VERSION, number__isnull=False)
    return list(versions.order_by("-number"))


@login_required
@require_http_methods(["GET", "POST"])
def eval_new(request: HttpRequest, dataset_slug: str) -> HttpResponse:
    workspace = current_workspace(request)
    dataset = access_dataset(request.user, workspace, dataset_slug, "change")
    versions = _flow_versions(dataset)
    form = EvalRunForm(
        request.POST or None,
        dataset=dataset,
        flow_versions=versions,
        models=variants.models_usable(request.user, workspace.id),
        prompt_versions=variants.prompt_versions_usable(request.user, workspace.id),
    )
    if request.method == "GET" and dataset.flow_id and dataset.flow.published_version_id:
        form.initial["flow_version"] = dataset.flow.published_version_id
    if request.method == "POST" and form.is_valid():
        chosen = form.chosen()
        for reason in evaluator_models_refused(request.user, workspace.id, chosen):
            form.add_error(None, reason)
        if form.is_valid():
            eval_run = _eval_start(request, form, dataset, versions, chosen)
            if eval_run is not None:
                return redirect("evals:eval-detail", dataset.slug, eval_run.id)
    context = {"workspace": workspace, "dataset": dataset, "form": form, "versions": versions}
    status = 400 if form.errors else 200
    return render(request, "evals/eval_new.html", context, status=status)


def _eval_start(request, form: EvalRunForm, dataset: Dataset, versions, chosen) -> EvalRun | None:
    """Start what the valid ``form`` asks for: the version as it is, or with a swap; None
    with the reasons added to the form when the service refuses."""
    choice = form.cleaned_data["cases"]
    version = None if choice == "current" else dataset.versions.get(id=int(choice))
    flow_version = next(v for v in versions if v.id == form.cleaned_data["flow_version"])
    swap = form.swap()
    try:
        if swap.empty:
            return services.eval_run_start(
                dataset=dataset,
                evaluators=chosen,
                version=version,
                flow_version=flow_version,
                actor=request.user,
            )
        return services.eval_variant_start(
            dataset=dataset,
            evaluators=chosen,
            version=version,
            base=flow_version,
            swap=swap,
            actor=request.user,
        )
    except ValidationError as exc:
        form.add_error(None, exc)
    except GraphError as exc:
        form.add_error(
            None, [f"With the swap, the flow does not pass its check: {e}" for e in exc.errors]
        )
    return None


@login_required
@require_GET
def eval_list(request: HttpRequest, dataset_slug: str) -> HttpResponse:
    workspace = current_workspace(request)
    dataset = access_dataset(request.user, workspace, dataset_slug, "view")
    context = {
        "workspace": workspace,
        "dataset": dataset,
        "eval_runs": dataset.eval_runs.select_related(
            "flow_version", "dataset_version", "base_version"
        )[:200],
        "can_change": "change" in access.object_actions(request.user, dataset.target),
    }
    return render(request, "evals/eval_list.html", context)


def _eval_run(request: HttpRequest, dataset_slug: str, eval_id: int, action: str) -> EvalRun:
    workspace = current_workspace(request)
    dataset = access_dataset(request.user, workspace, dataset_slug, action)
    found = (
        dataset.eval_runs.select_related("flow_version", "dataset_version", "base_version")
        .filter(id=eval_id)
        .first()
    )
    if found is None:
        raise Http404
    found.dataset = dataset
    return found


@login_required
@require_GET
def eval_detail(request: HttpRequest, dataset_slug: str, eval_id: int) -> HttpResponse:
    eval_run = _eval_run(request, dataset_slug, eval_id, "view")
    cases = eval_run.dataset_version.cases
    results = [
        {"result": r, "case": cases[r.index] if r.index < len(cases) else {}}
        for r in eval_run.results.all()
    ]
    context = {
        "workspace": eval_run.dataset.workspace,
        "dataset": eval_run.dataset,
        "eval_run": eval_run,
        "results": results,
        "can_change": "change" in access.object_actions(request.user, eval_run.dataset.target),
    }
    return render_page_or_partial(request, "evals/eval_detail.html", context, partial="progress")


@login_required
@require_POST
def eval_cancel(request: HttpRequest, dataset_slug: str, eval_id: int) -> HttpResponse:
    eval_run = _eval_run(request, dataset_slug, eval_id, "change")
    if services.eval_run_cancel(eval_run=eval_run):
        messages.success(request, "The evaluation was cancelled.")
    return redirect("evals:eval-detail", dataset_slug, eval_run.id)
