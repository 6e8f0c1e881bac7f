"""A flow's alerts: its rules (list, create, edit, delete, send a test) and their firing history."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from flows.access import access_flow
from observe.access import access_alert_rule
from observe.alerts import selectors, services
from observe.forms import AlertRuleForm
from observe.models import NotifyStatus
from studio import access
from workspaces.access import current_workspace


@login_required
@require_GET
def alert_list(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "view")
    context = {
        "workspace": workspace,
        "flow": flow,
        "rules": selectors.alert_rules_of(flow),
        "firings": selectors.alert_firings_of(flow),
        "can_change": "change" in access.object_actions(request.user, flow),
    }
    return render(request, "observe/alerts.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def alert_new(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "change")
    form = AlertRuleForm(request.POST or None, workspace=workspace)
    if request.method == "POST" and form.is_valid():
        rule = services.alert_rule_create(flow=flow, values=form.values(), actor=request.user)
        messages.success(request, f"Added the alert {rule.name}.")
        return redirect("observe:alert-list", flow.slug)
    context = {"workspace": workspace, "flow": flow, "form": form, "rule": None}
    return render(request, "observe/alert_form.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def alert_edit(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    workspace = current_workspace(request)
    rule = access_alert_rule(request.user, workspace, slug, rule_id, "change")
    form = AlertRuleForm(request.POST or None, workspace=workspace, rule=rule)
    if request.method == "POST" and form.is_valid():
        services.alert_rule_update(rule=rule, values=form.values(), actor=request.user)
        messages.success(request, f"Saved the alert {rule.name}.")
        return redirect("observe:alert-list", rule.flow.slug)
    context = {"workspace": workspace, "flow": rule.flow, "form": form, "rule": rule}
    return render(request, "observe/alert_form.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def alert_delete(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    rule = access_alert_rule(request.user, current_workspace(request), slug, rule_id, "change")
    services.alert_rule_delete(rule=rule, actor=request.user)
    messages.success(request, f"Deleted the alert {rule.name}.")
    return redirect("observe:alert-list", rule.flow.slug)


@login_required
@require_POST
def alert_test(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    rule = access_alert_rule(request.user, current_workspace(request), slug, rule_id, "change")
    try:
        result = services.alert_rule_test(rule=rule, actor=request.user)
    except services.AlertTestTooSoon as too_soon:
        messages.error(
            request,
            f"Tests of {rule.name} were sent moments ago: try again in {too_soon.wait_s} seconds.",
        )
    else:
        _tell_test_result(request, rule.name, result)
    return redirect("observe:alert-list", rule.flow.slug)


def _tell_test_result(request: HttpRequest, name: str, result: services.AlertTestResult) -> None:
    told = [
        f"{channel} sent"
        if outcome.status == NotifyStatus.SENT
        else f"{channel} not sent: {outcome.error}"
        for channel, outcome in (("webhook", result.webhook), ("email", result.email))
        if outcome.status != NotifyStatus.NONE
    ]
    failed = NotifyStatus.FAILED in (result.webhook.status, result.email.status)
    (messages.error if failed else messages.success)(
        request, f"Test notification of {name}: {'; '.join(told)}."
    )
