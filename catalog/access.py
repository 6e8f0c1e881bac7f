"""Access to the catalog's models, adapters, credentials, routes and prompts; built on
``studio.access``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404

from catalog.models import Credential, LoraAdapter, Model, Prompt, PromptVersion, Route
from catalog.selectors.models import model_for_workspace
from studio.access import check, fetch
from workspaces.access import access_workspace, key_refusal
from workspaces.models import ApiKey, KnowledgeAccess


def access_model(user, model_id: Any, perm: str) -> Model:
    """A catalog model; ``perm``: view, use, change, delete, share."""
    return check(user, fetch(Model, id=model_id), perm)


def access_adapter(user, adapter_id: Any, perm: str) -> LoraAdapter:
    """A LoRA adapter, checked against its base model (``perm`` as for the model)."""
    adapter = fetch(LoraAdapter, "base", id=adapter_id)
    check(user, adapter.base, perm)
    return adapter


def access_credential(user, credential_id: Any, perm: str) -> Credential:
    """A stored credential; ``perm`` (view, add, delete) is the role's, workspace-wide: secrets
    are not shared object by object."""
    credential = fetch(Credential, id=credential_id)
    access_workspace(user, credential.workspace_id, f"catalog.{perm}_credential")
    return credential


def access_route(user, route_id: Any, perm: str) -> Route:
    """A route; ``perm``: view, use, change, delete, share."""
    return check(user, fetch(Route, id=route_id), perm)


def access_prompt(user, prompt_id: Any, perm: str) -> Prompt:
    """A library prompt; ``perm``: view, use, change, approve, delete, share."""
    return check(user, fetch(Prompt, id=prompt_id), perm)


def access_prompt_version(user, version_id: Any, perm: str) -> PromptVersion:
    """A version of a library prompt, checked against its prompt."""
    version = fetch(PromptVersion, "prompt", id=version_id)
    check(user, version.prompt, perm)
    return version


def key_may_embed(api_key, model: Model) -> Model:
    """``model`` if ``api_key`` may embed texts with it over ``/v1/embeddings``.

    Keys have no scope for models; embedding is what retrieval does, so a key needs knowledge
    access (read or write), and the member who made it must be allowed to use the model (a
    host-issued key has no such member). Http404 for another workspace's model;
    PermissionDenied with the reason otherwise."""
    if model.workspace_id not in (None, api_key.workspace_id):
        raise Http404
    if api_key.knowledge_access == KnowledgeAccess.NONE:
        raise PermissionDenied(
            "This API key has no knowledge access; embeddings need at least read."
        )
    if api_key.created_by_id is not None:
        try:
            check(api_key.created_by, model, "use")
        except (Http404, PermissionDenied):
            raise PermissionDenied(
                "The member who made this API key may not use this model."
            ) from None
    return model


def access_api_embedding_model(api_key, slug: str) -> Model:
    """The workspace's (or a shared) model named ``slug`` if the key may embed with it
    (``key_may_embed``); Http404 when there is none. Its task is the caller's to check."""
    model = model_for_workspace(api_key.workspace_id, slug)
    if model is None:
        raise Http404
    return key_may_embed(api_key, model)


def access_embedding_model_for_task(model_id: int, api_key_id: int) -> Model:
    """The model of an embedding job, checked again on the worker: the key may have been
    revoked, narrowed or expired since the request. Http404 or PermissionDenied."""
    api_key = ApiKey.objects.select_related("created_by").filter(id=api_key_id).first()
    if api_key is None:
        raise PermissionDenied("the API key is gone")
    if (reason := key_refusal(api_key)) is not None:
        raise PermissionDenied(reason)
    return key_may_embed(api_key, fetch(Model, id=model_id))
