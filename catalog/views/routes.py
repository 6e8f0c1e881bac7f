"""Pages of routes: list, create, edit, delete."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from catalog.access import access_route
from catalog.forms.routes import RouteForm
from catalog.selectors.routes import route_models_offered, routes_visible
from catalog.services.routes import route_create, route_delete, route_update
from workspaces.access import access_workspace, current_workspace, workspace_perms


@login_required
@require_http_methods(["GET"])
def route_list(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    can_add = "catalog.add_route" in workspace_perms(request.user, workspace.id)
    context = {
        "workspace": workspace,
        "routes": routes_visible(request.user, workspace.id),
        "can_add": can_add,
    }
    return render(request, "catalog/routes/list.html", context)


def _save(request: HttpRequest, form: RouteForm, save) -> bool:
    if not form.is_valid():
        return False
    data = form.cleaned_data
    try:
        save(data)
    except ValidationError as exc:
        for message in exc.messages:
            form.add_error(None, message)
        return False
    return True


@login_required
@require_http_methods(["GET", "POST"])
def route_new(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    access_workspace(request.user, workspace.id, "catalog.add_route")
    models = route_models_offered(request.user, workspace.id)
    form = RouteForm(
        request.POST or None, user=request.user, models=models, workspace_id=workspace.id
    )

    def save(data: dict) -> None:
        route_create(
            workspace=workspace,
            slug=data["slug"],
            name=data["name"],
            strategy=data["strategy"],
            timeout_s=data["timeout_s"],
            description=data["description"],
            targets=data["targets"],
            actor=request.user,
        )

    if request.method == "POST" and _save(request, form, save):
        messages.success(request, f"Created the route {form.cleaned_data['slug']}.")
        return redirect("catalog:route-list")
    status = 400 if request.method == "POST" else 200
    context = {"workspace": workspace, "form": form, "route": None}
    return render(request, "catalog/routes/form.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def route_edit(request: HttpRequest, route_id: int) -> HttpResponse:
    route = access_route(request.user, route_id, "change")
    models = route_models_offered(request.user, route.workspace_id)
    form = RouteForm(request.POST or None, user=request.user, models=models, route=route)

    def save(data: dict) -> None:
        route_update(
            route=route,
            name=data["name"],
            strategy=data["strategy"],
            timeout_s=data["timeout_s"],
            description=data["description"],
            targets=data["targets"],
            actor=request.user,
        )

    if request.method == "POST" and _save(request, form, save):
        messages.success(request, f"Saved the route {route.slug}.")
        return redirect("catalog:route-list")
    status = 400 if request.method == "POST" else 200
    context = {"workspace": route.workspace, "form": form, "route": route}
    return render(request, "catalog/routes/form.html", context, status=status)


@login_required
@require_POST
def route_remove(request: HttpRequest, route_id: int) -> HttpResponse:
    route = access_route(request.user, route_id, "delete")
    route_delete(route=route, actor=request.user)
    messages.success(request, f"Deleted the route {route.slug}.")
    return redirect("catalog:route-list")
