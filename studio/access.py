"""The one access layer: every view, API endpoint, consumer and task fetches objects through here.

``access_<entity>(user, id, perm)`` returns the object or raises: ``Http404`` when it does not
exist, lies in a workspace the user is not a member of, or is hidden from a limited member (so ids
of other tenants leak nothing); ``PermissionDenied`` when the user may see it but not do ``perm``.

What a member may do with an object is the union of
- their role's permissions (the role group's set, ``studio.roles``), unless the membership is
  limited, and
- the object's django-guardian grants to them or to one of their teams.

Models are looked up by label, and shareable kinds are registered by their apps, so this module
imports no app.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from studio.models import KEY_PREFIX, ApiKey, Membership, Workspace, hash_key_secret
from studio.roles import UNLIMITED_ROLES, role_permissions

# --- shareable kinds ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A type of object that can be shared: its model and the grant levels offered for it.

    ``levels`` maps a level name shown to admins ("view", "use", "edit", "manage") to the
    actions (permission codenames without ``_<model>``) that the level grants.
    """

    name: str
    label: str
    levels: dict[str, tuple[str, ...]]

    @property
    def model(self) -> type[Model]:
        return apps.get_model(self.label)


KINDS: dict[str, Kind] = {}


def register_kind(name: str, label: str, levels: dict[str, tuple[str, ...]]) -> None:
    """Called by an app's ``ready()``: objects of ``label`` can be shared as ``name``."""
    KINDS[name] = Kind(name=name, label=label, levels=levels)


def kind_of(obj: Model) -> Kind:
    label = obj._meta.label
    for kind in KINDS.values():
        if kind.label == label:
            return kind
    raise LookupError(f"{label} is not a shareable kind")


# --- membership -----------------------------------------------------------------------------


def _active(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def membership(user, workspace_id: int | None) -> Membership | None:
    if not _active(user) or workspace_id is None:
        return None
    return Membership.objects.filter(user=user, workspace_id=workspace_id).first()


def user_workspaces(user) -> QuerySet[Workspace]:
    if not _active(user):
        return Workspace.objects.none()
    return Workspace.objects.filter(memberships__user=user).order_by("name")


def current_workspace(request) -> Workspace:
    """The workspace the request works in: the session's choice, else the user's first."""
    workspaces = user_workspaces(request.user)
    chosen = request.session.get("workspace_id")
    workspace = (workspaces.filter(id=chosen).first() if chosen else None) or workspaces.first()
    if workspace is None:
        raise PermissionDenied("You are not a member of any workspace.")
    return workspace


def workspace_perms(user, workspace_id: int) -> frozenset[str]:
    """The ``app_label.codename`` permissions ``user``'s role gives across the workspace."""
    found = membership(user, workspace_id)
    return role_permissions(found.role) if found else frozenset()


def access_workspace(user, workspace_id: int, perm: str) -> Workspace:
    """The workspace if ``user``'s role holds ``perm`` (``"studio.manage_members"``) in it."""
    found = membership(user, workspace_id)
    if found is None:
        raise Http404
    if perm not in role_permissions(found.role):
        raise PermissionDenied
    return found.workspace


# --- objects --------------------------------------------------------------------------------


def _codename(model: type[Model] | Model, action: str) -> str:
    return f"{action}_{model._meta.model_name}"


def _granted(user, obj: Model) -> set[str]:
    """Codenames granted on ``obj`` to ``user`` directly or through one of their teams."""
    user_perms = get_user_obj_perms_model(obj).objects.filter(user=user, content_object=obj)
    group_perms = get_group_obj_perms_model(obj).objects.filter(
        group__user=user, content_object=obj
    )
    return set(user_perms.values_list("permission__codename", flat=True)) | set(
        group_perms.values_list("permission__codename", flat=True)
    )


def object_actions(user, obj: Model) -> frozenset[str]:
    """The actions (``view``, ``run``, ``change`` …) ``user`` may take on ``obj``.

    Raises Http404 when ``user`` is not a member of the object's workspace. Objects without a
    workspace (shared catalog models) can be viewed and used by every member of any workspace
    and changed by superusers only.
    """
    suffix = f"_{obj._meta.model_name}"
    if getattr(obj, "workspace_id", None) is None:
        if not _active(user) or not user_workspaces(user).exists():
            raise Http404
        if user.is_superuser:
            return frozenset(p.codename.removesuffix(suffix) for p in _model_permissions(type(obj)))
        return frozenset({"view", "use"})
    found = membership(user, obj.workspace_id)
    if found is None:
        raise Http404
    codenames = _granted(user, obj)
    if not found.limited or found.role in UNLIMITED_ROLES:
        prefix = f"{obj._meta.app_label}."
        codenames |= {
            p.removeprefix(prefix)
            for p in role_permissions(found.role)
            if p.startswith(prefix) and p.endswith(suffix)
        }
    return frozenset(c.removesuffix(suffix) for c in codenames if c.endswith(suffix))


def _model_permissions(model: type[Model]):
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    return Permission.objects.filter(content_type=ContentType.objects.get_for_model(model))


def has_perm(user, obj: Model, action: str) -> bool:
    try:
        return action in object_actions(user, obj)
    except Http404:
        return False


def check(user, obj: Model, action: str) -> Model:
    """``obj`` if ``user`` may take ``action`` on it; Http404 if they may not even see it."""
    actions = object_actions(user, obj)
    if action in actions:
        return obj
    if "view" not in actions:
        raise Http404
    raise PermissionDenied


def _fetch(label: str, *related: str, **lookup: Any) -> Model:
    model = apps.get_model(label)
    try:
        return model.objects.select_related(*related).get(**lookup)
    except (model.DoesNotExist, ValidationError, ValueError):
        raise Http404 from None


def scope(user, workspace_id: int, queryset: QuerySet, action: str = "view") -> QuerySet:
    """``queryset`` narrowed in SQL to the workspace's objects ``user`` may take ``action`` on.

    For retrieval and lists: one query, whatever the number of grants.
    """
    found = membership(user, workspace_id)
    if found is None:
        return queryset.none()
    model = queryset.model
    queryset = queryset.filter(workspace_id=workspace_id)
    codename = _codename(model, action)
    by_role = f"{model._meta.app_label}.{codename}" in role_permissions(found.role)
    if by_role and (not found.limited or found.role in UNLIMITED_ROLES):
        return queryset
    user_grants = get_user_obj_perms_model(model).objects.filter(
        user=user, permission__codename=codename
    )
    group_grants = get_group_obj_perms_model(model).objects.filter(
        group__user=user, permission__codename=codename
    )
    return queryset.filter(
        Q(pk__in=user_grants.values("content_object_id"))
        | Q(pk__in=group_grants.values("content_object_id"))
    )


def access_flow(user, workspace: Workspace, slug: str, perm: str):
    """A flow of ``workspace`` by slug; ``perm`` is an action: view, run, change, publish,
    delete, share."""
    return check(user, _fetch("flows.Flow", workspace=workspace, slug=slug), perm)


def access_run(user, run_id: Any, perm: str):
    """A run, checked against its flow: reading a run needs ``view``, starting one ``run``."""
    run = _fetch("flows.Run", "flow", id=run_id)
    check(user, run.flow, perm)
    return run


def access_model(user, model_id: Any, perm: str):
    """A catalog model; ``perm``: view, use, change, delete, share."""
    return check(user, _fetch("catalog.Model", id=model_id), perm)


def access_adapter(user, adapter_id: Any, perm: str):
    """A LoRA adapter, checked against its base model (``perm`` as for the model)."""
    adapter = _fetch("catalog.LoraAdapter", "base", id=adapter_id)
    check(user, adapter.base, perm)
    return adapter


def access_credential(user, credential_id: Any, perm: str):
    """A stored credential; ``perm`` (view, add, delete) is the role's, workspace-wide: secrets
    are not shared object by object."""
    credential = _fetch("catalog.Credential", id=credential_id)
    access_workspace(user, credential.workspace_id, f"catalog.{perm}_credential")
    return credential


def access_route(user, route_id: Any, perm: str):
    """A route; ``perm``: view, use, change, delete, share."""
    return check(user, _fetch("catalog.Route", id=route_id), perm)


def access_prompt(user, prompt_id: Any, perm: str):
    """A library prompt; ``perm``: view, use, change, approve, delete, share."""
    return check(user, _fetch("catalog.Prompt", id=prompt_id), perm)


def access_prompt_version(user, version_id: Any, perm: str):
    """A version of a library prompt, checked against its prompt."""
    version = _fetch("catalog.PromptVersion", "prompt", id=version_id)
    check(user, version.prompt, perm)
    return version


def access_knowledge_base(user, knowledge_base_id: Any, perm: str):
    """A knowledge base; ``perm``: view, use (retrieve), change (its documents too), delete,
    share."""
    return check(user, _fetch("knowledge.KnowledgeBase", id=knowledge_base_id), perm)


def access_document(user, document_id: Any, perm: str):
    """A document, checked against its knowledge base (``perm`` as for the base)."""
    document = _fetch("knowledge.Document", "knowledge_base", id=document_id)
    check(user, document.knowledge_base, perm)
    return document


def access_chunk(user, chunk_id: Any, perm: str):
    """A chunk, checked against its knowledge base (``perm`` as for the base)."""
    chunk = _fetch("knowledge.Chunk", "knowledge_base", "document", id=chunk_id)
    check(user, chunk.knowledge_base, perm)
    return chunk


def access_api_knowledge_base(api_key: ApiKey, slug: str):
    """A knowledge base of the key's workspace by slug; Http404 for anything else."""
    return _fetch("knowledge.KnowledgeBase", workspace_id=api_key.workspace_id, slug=slug)


def access_document_for_task(document_id: Any):
    """The document an ingestion task is to process, if whoever added it may still change its
    knowledge base (PermissionDenied with the reason otherwise; Http404 if it is gone)."""
    document = _fetch("knowledge.Document", "knowledge_base", "created_by", id=document_id)
    user = document.created_by
    if user is not None and not has_perm(user, document.knowledge_base, "change"):
        raise PermissionDenied("whoever added the document may no longer change this base")
    return document


def access_knowledge_base_for_task(
    knowledge_base_id: Any, *, user_id: int | None, api_key_id: int | None
):
    """The base a queued retrieval reads, if whoever asked may still ``use`` it: the user, or
    an unrevoked API key of its workspace. PermissionDenied (with the reason) or Http404."""
    base = _fetch("knowledge.KnowledgeBase", "embedding_model", "reranker", id=knowledge_base_id)
    if api_key_id is not None:
        if ApiKey.objects.filter(
            id=api_key_id, workspace_id=base.workspace_id, revoked_at__isnull=True
        ).exists():
            return base
        raise PermissionDenied("the API key was revoked")
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(id=user_id).first()
    if user is None or not has_perm(user, base, "use"):
        raise PermissionDenied("you may no longer use this knowledge base")
    return base


def access_key(user, key_id: Any, perm: str) -> ApiKey:
    """An API key; ``perm``: view, change (revoke), delete, share."""
    return check(user, _fetch("studio.ApiKey", id=key_id), perm)


def access_object(user, kind: str, object_id: Any, perm: str) -> Model:
    """Any registered shareable kind by id (the sharing pages)."""
    if kind not in KINDS:
        raise Http404
    return check(user, _fetch(KINDS[kind].label, id=object_id), perm)


def access_membership(user, membership_id: Any, perm: str) -> Membership:
    """A membership of a workspace where ``user`` holds ``perm``
    (``"studio.manage_members"``)."""
    found = _fetch("studio.Membership", id=membership_id)
    access_workspace(user, found.workspace_id, perm)
    return found


def access_team(user, team_id: Any, perm: str):
    """A team; seeing it needs membership, ``perm`` (``"studio.change_team"``) the role's."""
    team = _fetch("studio.Team", id=team_id)
    access_workspace(user, team.workspace_id, perm)
    return team


# --- API keys and tasks ---------------------------------------------------------------------


def authenticate_api_key(authorization: str | None) -> ApiKey | None:
    """The live key named by an ``Authorization: Bearer <key>`` header, or None."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    key = authorization.removeprefix("Bearer ").strip()
    if not key.startswith(KEY_PREFIX) or "." not in key:
        return None
    prefix, _, secret = key.removeprefix(KEY_PREFIX).partition(".")
    api_key = (
        ApiKey.objects.select_related("workspace")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if api_key is None or not _constant_time_equal(api_key.secret_hash, hash_key_secret(secret)):
        return None
    ApiKey.objects.filter(id=api_key.id).update(last_used_at=timezone.now())
    return api_key


def _constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def access_published_flow(api_key: ApiKey, slug: str):
    """The published flow ``slug`` of the key's workspace; Http404 for anything else."""
    flow_model = apps.get_model("flows.Flow")
    flow = (
        flow_model.objects.select_related("published_version")
        .filter(workspace_id=api_key.workspace_id, slug=slug, published_version__isnull=False)
        .first()
    )
    if flow is None:
        raise Http404
    return flow


def access_run_for_task(run_id: Any):
    """The run a Celery task is to advance, if whoever started it may still run its flow.

    A run started by a user needs that user active with ``run`` on the flow; one started by an
    API key needs the key unrevoked. Raises PermissionDenied with the reason otherwise (the
    caller fails the run with it), Http404 if the run is gone.
    """
    run = _fetch("flows.Run", "flow", "created_by", id=run_id)
    if run.api_key_id is not None:
        if ApiKey.objects.filter(id=run.api_key_id, revoked_at__isnull=True).exists():
            return run
        raise PermissionDenied("the API key that started the run was revoked")
    if run.created_by_id is None:
        return run  # started by the studio itself (seed, maintenance)
    if not has_perm(run.created_by, run.flow, "run"):
        raise PermissionDenied("the user who started the run may no longer run this flow")
    return run
