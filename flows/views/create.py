"""New flows: blank or from a starter, imported from a file, or duplicated from another flow.

Creating needs the role's ``flows.add_flow`` in the workspace (``studio.access``), as every
other kind of object's "new" page does; duplicating also needs ``view`` on the original.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_http_methods, require_POST

from catalog.selectors.playground import playground_models
from flows.access import access_flow
from flows.models import Flow
from flows.schema import GraphError
from flows.services.transfer import (
    MAX_FILE_BYTES,
    ImportRefused,
    flow_create_with_draft,
    flow_duplicate,
    flow_import,
)
from flows.starters import Starter, starters
from knowledge.selectors import knowledge_bases_visible
from workspaces.access import access_workspace, current_workspace
from workspaces.models import Workspace

ADD_FLOW = "flows.add_flow"


def _opened(flow: Flow) -> HttpResponse:
    """Straight into the editor where there is one, else the flow's page."""
    try:
        return redirect(reverse("flows:flow-editor", args=[flow.slug]))
    except NoReverseMatch:
        return redirect("flows:flow-detail", slug=flow.slug)


class NewFlowForm(forms.Form):
    """Blank or a starter, with the chat model and knowledge base the starter needs, offered
    from what the user may use in the workspace."""

    starter = forms.ChoiceField(widget=forms.RadioSelect)
    name = forms.CharField(max_length=200)
    model = forms.ChoiceField(required=False, label="Chat model")
    knowledge_base = forms.ChoiceField(required=False, label="Knowledge base")

    def __init__(self, *args, user, workspace: Workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.starters = starters()
        self.fields["starter"].choices = [(s.key, s.name) for s in self.starters.values()]
        self.fields["starter"].initial = next(iter(self.starters))
        models = {m.slug: m.name for m in playground_models(user, workspace.id)}
        self.fields["model"].choices = [("", "—"), *models.items()]
        bases = knowledge_bases_visible(user, workspace.id, "use").order_by("name")
        self.fields["knowledge_base"].choices = [("", "—"), *((b.slug, b.name) for b in bases)]

    def clean(self) -> dict:
        data = super().clean()
        chosen: Starter | None = self.starters.get(data.get("starter", ""))
        if chosen is None:
            return data
        if chosen.needs_model and not data.get("model"):
            self.add_error("model", f"Choose the chat model that “{chosen.name}” calls.")
        if chosen.needs_knowledge_base and not data.get("knowledge_base"):
            self.add_error(
                "knowledge_base", f"Choose the knowledge base that “{chosen.name}” answers from."
            )
        return data


class ImportForm(forms.Form):
    file = forms.FileField(label="Flow file (JSON or YAML)")


def _creatable(request: HttpRequest) -> Workspace:
    return access_workspace(request.user, current_workspace(request).id, ADD_FLOW)


def _new_form(request: HttpRequest, workspace: Workspace) -> NewFlowForm:
    """The empty form, with the starter a link chose (``?starter=<key>``) picked."""
    form = NewFlowForm(user=request.user, workspace=workspace)
    chosen = request.GET.get("starter", "")
    if chosen in form.starters:
        form.fields["starter"].initial = chosen
    return form


def _render_new(
    request: HttpRequest,
    workspace: Workspace,
    *,
    form: NewFlowForm | None = None,
    errors: list[str] | None = None,
    import_errors: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "workspace": workspace,
        "form": form or _new_form(request, workspace),
        "import_form": ImportForm(),
        "starters": list(starters().values()),
        "errors": errors or [],
        "import_errors": import_errors or [],
        "max_kb": MAX_FILE_BYTES // 1024,
    }
    return render(request, "flows/new.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def flow_new(request: HttpRequest) -> HttpResponse:
    """The new flow page; its POST creates a flow from the chosen starter (blank is one)."""
    workspace = _creatable(request)
    if request.method == "GET":
        return _render_new(request, workspace)
    form = NewFlowForm(request.POST, user=request.user, workspace=workspace)
    if not form.is_valid():
        return _render_new(request, workspace, form=form, status=400)
    chosen = form.starters[form.cleaned_data["starter"]]
    graph = chosen.graph_for(
        model=form.cleaned_data["model"], knowledge_base=form.cleaned_data["knowledge_base"]
    )
    try:
        flow = flow_create_with_draft(
            workspace=workspace,
            name=form.cleaned_data["name"],
            graph=graph,
            user=request.user,
            note=f"Created from the starter “{chosen.name}”",
        )
    except GraphError as exc:
        return _render_new(request, workspace, form=form, errors=exc.errors, status=400)
    messages.success(request, f"Created {flow.name}.")
    return _opened(flow)


@login_required
@require_POST
def flow_import_view(request: HttpRequest) -> HttpResponse:
    """A new flow from an uploaded file; a refused file stores nothing and lists every
    problem."""
    workspace = _creatable(request)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        errors = [f"file: {e}" for e in form.errors.get("file", ["choose a file"])]
        return _render_new(request, workspace, import_errors=errors, status=400)
    upload = form.cleaned_data["file"]
    if upload.size > MAX_FILE_BYTES:
        # Refused before reading: an oversized upload is never held in memory.
        errors = [f"file: larger than {MAX_FILE_BYTES // 1024} KB"]
        return _render_new(request, workspace, import_errors=errors, status=400)
    try:
        flow = flow_import(
            workspace=workspace, data=upload.read(), filename=upload.name or "", user=request.user
        )
    except ImportRefused as exc:
        return _render_new(request, workspace, import_errors=exc.errors, status=400)
    messages.success(request, f"Imported {flow.name} as version 1.")
    return _opened(flow)


@login_required
@require_POST
def flow_duplicate_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Copy the flow's draft (else its latest version) into a new flow "<name> (copy)"."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "view")
    access_workspace(request.user, workspace.id, ADD_FLOW)
    try:
        copy = flow_duplicate(flow=flow, user=request.user)
    except GraphError as exc:
        messages.error(request, "The flow could not be copied: " + "; ".join(exc.errors))
        return redirect("flows:flow-detail", slug=flow.slug)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        return redirect("flows:flow-detail", slug=flow.slug)
    messages.success(request, f"Created {copy.name}.")
    return _opened(copy)
