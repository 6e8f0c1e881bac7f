"""Pages of the knowledge bases themselves: the list, creating a base, its settings, and
deleting it (after a confirmation page)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from catalog.models import Task
from catalog.services.models import embedding_model_default
from knowledge import selectors
from knowledge.access import access_knowledge_base
from knowledge.forms import KnowledgeBaseForm
from knowledge.models import KnowledgeBase
from knowledge.services.bases import kb_create, kb_delete, kb_update
from workspaces.access import access_workspace, current_workspace, workspace_perms


def _data(request: HttpRequest):
    # A POST is a submission even when empty: its form must be bound (and refused).
    return request.POST if request.method == "POST" else None


def _form(
    request: HttpRequest, workspace_id: int, base: KnowledgeBase | None = None, **kwargs
) -> KnowledgeBaseForm:
    """The settings form, offering the models ``request.user`` may use in the workspace (and
    the base's current ones)."""
    user = request.user
    embedding = [base.embedding_model_id] if base else []
    rerank = [base.reranker_id] if base else []
    return KnowledgeBaseForm(
        _data(request),
        embedding_models=selectors.models_usable(user, workspace_id, Task.EMBEDDING, embedding),
        rerankers=selectors.models_usable(user, workspace_id, Task.RERANK, rerank),
        workspace_id=workspace_id,
        **kwargs,
    )


def _render_form(request, form, workspace, base: KnowledgeBase | None) -> HttpResponse:
    context = {"workspace": workspace, "form": form, "base": base}
    status = 400 if form.is_bound else 200
    return render(request, "knowledge/form.html", context, status=status)


@login_required
@require_GET
def kb_list(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    context = {
        "workspace": workspace,
        "bases": selectors.knowledge_bases_listed(request.user, workspace.id),
        "can_add": "knowledge.add_knowledgebase" in workspace_perms(request.user, workspace.id),
    }
    return render(request, "knowledge/list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def kb_new(request: HttpRequest) -> HttpResponse:
    workspace = access_workspace(
        request.user, current_workspace(request).id, "knowledge.add_knowledgebase"
    )
    initial = {"embedding_model": embedding_model_default().id}
    form = _form(request, workspace.id, creating=True, initial=initial)
    if form.is_bound and form.is_valid():
        try:
            base = kb_create(
                workspace=workspace,
                slug=form.cleaned_data["slug"],
                values=form.settings(),
                actor=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Created {base.name}: add documents to it below.")
            return redirect("knowledge:kb-detail", knowledge_base_id=base.id)
    return _render_form(request, form, workspace, None)


@login_required
@require_http_methods(["GET", "POST"])
def kb_edit(request: HttpRequest, knowledge_base_id: int) -> HttpResponse:
    base = access_knowledge_base(request.user, knowledge_base_id, "change")
    form = _form(
        request,
        base.workspace_id,
        base,
        creating=False,
        lock_embedding=base.documents.exists(),
        initial=KnowledgeBaseForm.initial_for(base),
    )
    if form.is_bound and form.is_valid():
        try:
            base = kb_update(knowledge_base=base, values=form.settings(), actor=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Saved the settings of {base.name}.")
            return redirect("knowledge:kb-detail", knowledge_base_id=base.id)
    return _render_form(request, form, base.workspace, base)


@login_required
@require_http_methods(["GET", "POST"])
def kb_remove(request: HttpRequest, knowledge_base_id: int) -> HttpResponse:
    """GET asks for a confirmation; POST deletes the base with its documents and chunks."""
    base = access_knowledge_base(request.user, knowledge_base_id, "delete")
    if request.method == "POST":
        kb_delete(knowledge_base=base, actor=request.user)
        messages.success(request, f"Deleted the knowledge base {base.name}.")
        return redirect("knowledge:kb-list")
    context = {
        "workspace": base.workspace,
        "base": base,
        "document_count": base.documents.count(),
    }
    return render(request, "knowledge/delete.html", context)
