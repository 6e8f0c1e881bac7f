"""The credentials page: list (names and hints only), add, delete.

Credentials are an admin's business (the role permissions ``catalog.*_credential``); the secret
is accepted once and never shown again, not even in a form returned with errors. Whoever may add
a credential also decides where HTTP request nodes may send it (its allowed hosts).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from catalog.access import access_credential
from catalog.forms.credentials import CredentialForm, CredentialHostsForm
from catalog.selectors.credentials import credentials_of
from catalog.services.credentials import (
    credential_create,
    credential_delete,
    credential_hosts_set,
)
from workspaces.access import access_workspace, current_workspace, workspace_perms
from workspaces.models import Workspace


def _page(
    request: HttpRequest, workspace: Workspace, form: CredentialForm, status: int = 200
) -> HttpResponse:
    perms = workspace_perms(request.user, workspace.id)
    context = {
        "workspace": workspace,
        "credentials": credentials_of(workspace.id),
        "form": form,
        "can_add": "catalog.add_credential" in perms,
        "can_delete": "catalog.delete_credential" in perms,
    }
    return render(request, "catalog/credentials.html", context, status=status)


@login_required
@require_GET
def credential_list(request: HttpRequest) -> HttpResponse:
    workspace = access_workspace(
        request.user, current_workspace(request).id, "catalog.view_credential"
    )
    return _page(request, workspace, CredentialForm())


# The secret must not reach Django's error reports (mails, the debug page) if anything fails.
@sensitive_post_parameters("secret")
@never_cache
@login_required
@require_POST
def credential_create_view(request: HttpRequest) -> HttpResponse:
    workspace = access_workspace(
        request.user, current_workspace(request).id, "catalog.add_credential"
    )
    form = CredentialForm(request.POST)
    if form.is_valid():
        try:
            credential = credential_create(
                workspace=workspace,
                name=form.cleaned_data["name"],
                secret=form.cleaned_data["secret"],
                allowed_hosts=form.cleaned_data["allowed_hosts"],
                actor=request.user,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(
                request, f"Saved the credential {credential.name}. Its key is not shown again."
            )
            return redirect("catalog:credential-list")
    return _page(request, workspace, form, status=400)


@login_required
@require_POST
def credential_hosts_view(request: HttpRequest, credential_id: int) -> HttpResponse:
    credential = access_credential(request.user, credential_id, "add")
    form = CredentialHostsForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(" ".join(e for errs in form.errors.values() for e in errs))
        credential_hosts_set(
            credential=credential,
            allowed_hosts=form.cleaned_data["allowed_hosts"],
            actor=request.user,
        )
    except ValidationError as exc:
        messages.error(request, f"{credential.name}: {' '.join(exc.messages)}")
    else:
        hosts = ", ".join(credential.allowed_hosts) or "no host"
        messages.success(request, f"HTTP request nodes may send {credential.name} to {hosts}.")
    return redirect("catalog:credential-list")


@login_required
@require_POST
def credential_delete_view(request: HttpRequest, credential_id: int) -> HttpResponse:
    credential = access_credential(request.user, credential_id, "delete")
    try:
        credential_delete(credential=credential, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Deleted the credential {credential.name}.")
    return redirect("catalog:credential-list")
