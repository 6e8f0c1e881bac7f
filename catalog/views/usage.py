"""The usage page: totals, per day and per model, as charts and tables; the same series as JSON
for the charts, and the calls one by one as CSV."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from catalog.forms.usage import UsageFilterForm
from catalog.models import Usage
from catalog.selectors.usage import usage_export_rows, usage_filtered, usage_report
from workspaces.access import access_workspace, current_workspace
from workspaces.audit import csv_safe
from workspaces.models import Workspace
from workspaces.selectors import keys_for


def _filtered(request: HttpRequest) -> tuple[Workspace, UsageFilterForm, QuerySet[Usage] | None]:
    """The workspace, the bound filter form, and the calls it selects (None if it is invalid)."""
    workspace = access_workspace(request.user, current_workspace(request).id, "catalog.view_usage")
    form = UsageFilterForm(request.GET, user=request.user, workspace=workspace)
    if not form.is_valid():
        return workspace, form, None
    return workspace, form, usage_filtered(workspace.id, user=request.user, **form.filters())


def _series(report: dict[str, Any]) -> dict[str, Any]:
    """The report as the charts read it: parallel lists of plain numbers (cost as a float: a
    chart needs no more than a float's precision; the tables and CSV keep the decimals)."""
    days, models, totals = report["by_day"], report["by_model"], report["totals"]
    return {
        "totals": {key: _number(value) for key, value in totals.items()},
        "days": {
            "labels": [row["day"].isoformat() for row in days],
            "calls": [row["calls"] for row in days],
            "input_tokens": [row["tokens_in"] for row in days],
            "output_tokens": [row["tokens_out"] for row in days],
            "cost": [float(row["total_cost"]) for row in days],
        },
        "models": {
            "labels": [row["model_slug"] for row in models],
            "calls": [row["calls"] for row in models],
            "tokens": [row["tokens"] for row in models],
            "cost": [float(row["total_cost"]) for row in models],
        },
    }


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


@login_required
@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    workspace, form, rows = _filtered(request)
    context: dict[str, Any] = {
        "workspace": workspace,
        "form": form,
        "query": request.GET.urlencode(),
    }
    if rows is not None:
        report = usage_report(rows, form.cleaned_data["since"], form.cleaned_data["until"])
        context.update(report=report, series=_series(report))
    # A bad filter is answered with the page and the form's errors: the request was understood.
    return render(request, "catalog/usage.html", context)


@login_required
@require_GET
def usage_data(request: HttpRequest) -> JsonResponse:
    _, form, rows = _filtered(request)
    if rows is None:
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    report = usage_report(rows, form.cleaned_data["since"], form.cleaned_data["until"])
    return JsonResponse(_series(report))


# The CSV's columns and the export row's fields they come from; text ones are defused.
CSV_TEXT = {
    "model": "model_slug",
    "adapter": "adapter",
    "route": "route_slug",
    "reason": "reason",
    "flow": "flow_slug",
    "run": "run_id",
    "node": "node_id",
    "agent": "agent_slug",
    "source": "source",
    "user": "user__username",
}
CSV_NUMBERS = ["input_tokens", "output_tokens", "latency_ms", "ttft_ms", "cost", "cache_hit", "ok"]
CSV_COLUMNS = ["time", *CSV_TEXT, "api_key", *CSV_NUMBERS, "error"]


def _csv(rows: QuerySet[Usage], visible_keys: set[int]) -> str:
    """The calls as CSV, header first. A cell a spreadsheet would run as a formula (``=cmd``)
    is prefixed with a quote, as the audit export does."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in usage_export_rows(rows).iterator(chunk_size=1000):
        # A key's name is shown to those who may see the key (the keys page's rule).
        key_id = row["api_key_id"]
        key = (
            "" if key_id is None else row["api_key__name"] if key_id in visible_keys else "(hidden)"
        )
        writer.writerow(
            [
                row["created_at"].isoformat(),
                *(csv_safe(_text(row[field])) for field in CSV_TEXT.values()),
                csv_safe(key),
                *("" if row[field] is None else row[field] for field in CSV_NUMBERS),
                csv_safe(row["error"]),
            ]
        )
    return buffer.getvalue()


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@login_required
@require_GET
def usage_export(request: HttpRequest) -> HttpResponse:
    workspace, form, rows = _filtered(request)
    if rows is None:
        errors = "; ".join(message for messages in form.errors.values() for message in messages)
        return HttpResponse(errors, content_type="text/plain", status=400)
    visible_keys = set(keys_for(request.user, workspace).values_list("id", flat=True))
    response = HttpResponse(_csv(rows, visible_keys), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="usage-{workspace.slug}-{stamp}.csv"'
    return response
