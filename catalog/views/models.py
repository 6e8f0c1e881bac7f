"""Pages of the catalog's model entries: browse and filter, a model's page with its card and
adapters, and the create, edit and delete forms.

Shared entries (no workspace) are read-only to everyone but superusers: the access layer gives
others only ``view`` and ``use`` on them, so the edit and delete routes answer 403.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from catalog.access import access_adapter, access_model
from catalog.cards import render_card
from catalog.engines import engine_class
from catalog.forms.models import AdapterForm, ModelEntryForm, ModelFilterForm
from catalog.models import Model
from catalog.selectors.models import model_tags, models_filter, models_visible
from catalog.services.models import (
    adapter_create,
    adapter_delete,
    model_create,
    model_delete,
    model_update,
)
from studio import access
from studio.htmx import render_page_or_partial
from workspaces.access import access_workspace, current_workspace, workspace_perms


@login_required
@require_GET
@vary_on_headers("HX-Request")  # the same URL answers a whole page or only the results
def model_list(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    visible = models_visible(request.user, workspace.id)
    form = ModelFilterForm(request.GET, tags=model_tags(visible))
    form.is_valid()  # invalid filters are dropped, the rest apply
    models = models_filter(visible, **form.filters())
    context = {
        "workspace": workspace,
        "models": models,
        "form": form,
        "filtered": bool(form.filters()),
        "can_add": "catalog.add_model" in workspace_perms(request.user, workspace.id),
    }
    return render_page_or_partial(request, "catalog/list.html", context, partial="results")


def _supports_adapters(model: Model) -> bool:
    try:
        return engine_class(model.engine).supports_adapters
    except KeyError:  # an engine no longer installed
        return False


def _render_detail(
    request: HttpRequest, model: Model, *, adapter_form: AdapterForm | None = None, status=200
) -> HttpResponse:
    actions = access.object_actions(request.user, model)
    context = {
        "workspace": current_workspace(request),
        "model": model,
        "card": render_card(model.card),
        "adapters": model.adapters.all(),
        "supports_adapters": _supports_adapters(model),
        "adapter_form": adapter_form or AdapterForm(),
        "can_change": "change" in actions,
        "can_delete": "delete" in actions,
        "can_share": "share" in actions and model.workspace_id is not None,
        "can_use": "use" in actions,
    }
    return render(request, "catalog/detail.html", context, status=status)


@login_required
@require_GET
def model_detail(request: HttpRequest, model_id: int) -> HttpResponse:
    model = access_model(request.user, model_id, "view")
    return _render_detail(request, model)


def _posted(request: HttpRequest):
    # An empty POST is still a submission (and refused as such), not a request for the form.
    return request.POST if request.method == "POST" else None


def _render_form(request: HttpRequest, form: ModelEntryForm, model: Model | None, status=200):
    context = {"workspace": current_workspace(request), "form": form, "model": model}
    return render(request, "catalog/form.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def model_new(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    access_workspace(request.user, workspace.id, "catalog.add_model")
    form = ModelEntryForm(_posted(request), workspace_id=workspace.id, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            model = model_create(workspace=workspace, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Added {model.name} to the catalog.")
            return redirect("catalog:model-detail", model_id=model.id)
    return _render_form(request, form, None, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def model_edit(request: HttpRequest, model_id: int) -> HttpResponse:
    model = access_model(request.user, model_id, "change")
    form = ModelEntryForm(
        _posted(request),
        initial=ModelEntryForm.initial_for(model),
        workspace_id=model.workspace_id,
        user=request.user,
        current=model.credential,
    )
    if request.method == "POST" and form.is_valid():
        changes = form.changes()
        if not changes:
            messages.info(request, "Nothing changed.")
            return redirect("catalog:model-detail", model_id=model.id)
        try:
            model_update(model=model, actor=request.user, **changes)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Saved {model.name}.")
            return redirect("catalog:model-detail", model_id=model.id)
    return _render_form(request, form, model, status=400 if form.errors else 200)


@login_required
@require_POST
def model_remove(request: HttpRequest, model_id: int) -> HttpResponse:
    model = access_model(request.user, model_id, "delete")
    model_delete(model=model, actor=request.user)
    messages.success(request, f"Deleted {model.name} from the catalog.")
    return redirect("catalog:model-list")


@login_required
@require_POST
def adapter_new(request: HttpRequest, model_id: int) -> HttpResponse:
    model = access_model(request.user, model_id, "change")
    form = AdapterForm(request.POST)
    if form.is_valid():
        try:
            adapter = adapter_create(base=model, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Added the adapter {adapter.name}.")
            return redirect("catalog:model-detail", model_id=model.id)
    return _render_detail(request, model, adapter_form=form, status=400)


@login_required
@require_POST
def adapter_remove(request: HttpRequest, adapter_id: int) -> HttpResponse:
    adapter = access_adapter(request.user, adapter_id, "change")
    adapter_delete(adapter=adapter, actor=request.user)
    messages.success(request, f"Deleted the adapter {adapter.name}.")
    return redirect("catalog:model-detail", model_id=adapter.base_id)
