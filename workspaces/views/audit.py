"""The audit log: filter, page through, export as CSV."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from workspaces import selectors
from workspaces.access import access_workspace, current_workspace
from workspaces.audit import audit_csv_rows
from workspaces.audit_changes import audit_changes
from workspaces.forms import AuditFilterForm


def _events(request: HttpRequest):
    workspace = access_workspace(
        request.user, current_workspace(request).id, "workspaces.view_audit"
    )
    form = AuditFilterForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    return workspace, form, selectors.audit_events(workspace, filters)


@login_required
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    workspace, form, events = _events(request)
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    for event in page:
        event.changes = audit_changes(event.before, event.after)
    query = request.GET.copy()
    query.pop("page", None)
    context = {"workspace": workspace, "form": form, "page": page, "query": query.urlencode()}
    return render(request, "workspaces/audit.html", context, status=200 if form.is_valid() else 400)


@login_required
@require_GET
def audit_export(request: HttpRequest) -> HttpResponse:
    workspace, form, events = _events(request)
    response = HttpResponse("".join(audit_csv_rows(events)), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{workspace.slug}-{stamp}.csv"'
    return response
