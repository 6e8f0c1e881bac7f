"""The access page of one object: who can access it and why; share it with a member or a team
at a level; revoke a grant."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from studio import access
from workspaces import sharing
from workspaces.access import access_object
from workspaces.forms import GrantForm
from workspaces.models import Team


def _form(obj, kind: str, data=None) -> GrantForm:
    return GrantForm(data, workspace_id=obj.workspace_id, levels=list(access.KINDS[kind].levels))


@login_required
@require_GET
def share(request: HttpRequest, kind: str, object_id: int) -> HttpResponse:
    obj = access_object(request.user, kind, object_id, "share")
    return _render(request, kind, obj, _form(obj, kind))


def _render(request, kind: str, obj, form: GrantForm, status: int = 200) -> HttpResponse:
    context = {
        "workspace": obj.workspace,
        "kind": kind,
        "obj": obj,
        "grants": sharing.grants_on(obj),
        "access_rows": sharing.who_can_access(obj),
        "levels": access.KINDS[kind].levels,
        "form": form,
    }
    return render(request, "workspaces/share.html", context, status=status)


@login_required
@require_POST
def share_grant(request: HttpRequest, kind: str, object_id: int) -> HttpResponse:
    obj = access_object(request.user, kind, object_id, "share")
    form = _form(obj, kind, request.POST)
    if not form.is_valid():
        return _render(request, kind, obj, form, status=400)
    subject = form.subject_object()
    try:
        sharing.object_grant(
            obj=obj, subject=subject, level=form.cleaned_data["level"], actor=request.user
        )
    except ValidationError as exc:
        form.add_error(None, exc)
        return _render(request, kind, obj, form, status=400)
    messages.success(request, f"Shared {obj} ({form.cleaned_data['level']}).")
    return redirect("workspaces:share", kind=kind, object_id=obj.pk)


@login_required
@require_POST
def share_revoke(request: HttpRequest, kind: str, object_id: int) -> HttpResponse:
    obj = access_object(request.user, kind, object_id, "share")
    subject_type, _, subject_id = request.POST.get("subject", "").partition(":")
    if not subject_id.isdigit():
        raise Http404
    if subject_type == "team":
        subject = Team.objects.filter(id=subject_id, workspace_id=obj.workspace_id).first()
    else:
        subject = get_user_model().objects.filter(id=subject_id).first()
    if subject is None:
        raise Http404
    try:
        sharing.object_revoke(obj=obj, subject=subject, actor=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    return redirect("workspaces:share", kind=kind, object_id=obj.pk)
