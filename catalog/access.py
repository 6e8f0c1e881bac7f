"""Access to the catalog's models, adapters, credentials, routes and prompts; built on
``studio.access``."""

from __future__ import annotations

from typing import Any

from catalog.models import Credential, LoraAdapter, Model, Prompt, PromptVersion, Route
from studio.access import check, fetch
from workspaces.access import access_workspace


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
