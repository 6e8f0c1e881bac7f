"""Reads of credentials: never the secret, only what a page may show."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from catalog.models import Credential, Model


def credentials_of(workspace_id: int) -> QuerySet[Credential]:
    """A workspace's credentials with their creators and the models that use them (two queries
    more, whatever their number). The ciphertext is deferred: a list has no use for it."""
    return (
        Credential.objects.filter(workspace_id=workspace_id)
        .defer("ciphertext")
        .select_related("created_by")
        .prefetch_related(
            Prefetch("models", queryset=Model.objects.only("id", "slug", "name", "credential_id"))
        )
    )
