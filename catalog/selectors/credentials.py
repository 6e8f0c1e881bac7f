"""Reads of credentials: never the secret, only what a page may show; the one exception is
``acredential_for_request``, which a worker calls to send a secret where it is allowed to go."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from catalog.hosts import host_allowed
from catalog.models import Credential, Model
from catalog.secrets import decrypt
from workspaces.access import workspace_perms

# Managing credentials (an admin's right): storing one, deciding where it may be sent, and
# attaching it to a catalog model or pointing such a model elsewhere. Whoever may store a
# secret is whoever may decide where it goes.
MANAGE_CREDENTIALS = "catalog.add_credential"


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


def may_manage_credentials(user, workspace_id: int | None) -> bool:
    """Whether ``user``'s role in the workspace manages its credentials (None: a shared entry,
    which never has one)."""
    if workspace_id is None:
        return False
    return MANAGE_CREDENTIALS in workspace_perms(user, workspace_id)


def credentials_attachable(user, workspace_id: int | None) -> QuerySet[Credential]:
    """The credentials ``user`` may attach to a catalog model of the workspace: all of them for
    whoever manages credentials, none for anyone else."""
    if not may_manage_credentials(user, workspace_id):
        return Credential.objects.none()
    return Credential.objects.filter(workspace_id=workspace_id)


def credentials_for_requests(workspace_id: int) -> QuerySet[Credential]:
    """The credentials HTTP request nodes may use: those an admin has given allowed hosts."""
    return (
        Credential.objects.filter(workspace_id=workspace_id)
        .exclude(allowed_hosts=[])
        .defer("ciphertext")
        .order_by("name")
    )


def credential_for_requests(workspace_id: int, name: str) -> Credential | None:
    """The credential ``name`` if HTTP request nodes of the workspace may use it."""
    return credentials_for_requests(workspace_id).filter(name=name).first()


async def acredential_for_request(workspace_id: int, name: str, host: str) -> tuple[str, list[str]]:
    """The decrypted secret of credential ``name``, to be sent to ``host`` now, and the hosts
    it may go to (for the request's redirects).

    Read and checked at the moment of sending, so an admin's change of the allowed hosts (or a
    deletion) holds for runs already queued. PermissionError, with the same words whether the
    credential is missing or not open to requests; another message for a host not allowed.
    """
    found = await (
        Credential.objects.filter(workspace_id=workspace_id, name=name)
        .exclude(allowed_hosts=[])
        .values_list("ciphertext", "allowed_hosts")
        .afirst()
    )
    if found is None:
        raise PermissionError(credential_unavailable(name))
    ciphertext, allowed = found
    if not host_allowed(host, allowed):
        raise PermissionError(credential_host_refused(name, host, allowed))
    return decrypt(ciphertext), list(allowed)


def credential_unavailable(name: str) -> str:
    # One message for "does not exist" and "not open to HTTP requests": no probing for names.
    return (
        f"credential {name!r} does not exist here or may not be used by HTTP requests "
        "(an admin gives a credential its allowed hosts on the Credentials page)"
    )


def credential_host_refused(name: str, host: str, allowed: list[str]) -> str:
    return f"credential {name!r} may be sent only to {', '.join(allowed)}; not to {host}"
