"""Writes of credentials: the API keys of remote endpoints, encrypted at rest.

A secret enters here once and never leaves: it is encrypted before it is stored, the row keeps
only its last four characters as a hint, and the audit log records the name, the hint and the
allowed hosts. Only ``catalog.selectors.models.acredential_secret`` (an engine being built) and
``catalog.selectors.credentials.acredential_for_request`` (an HTTP node, to an allowed host)
decrypt it.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from catalog.hosts import hosts_clean
from catalog.models import Credential
from catalog.secrets import encrypt
from workspaces.audit import audit_record
from workspaces.models import Workspace

HINT_CHARS = 4
# A secret shorter than this would be half revealed by its hint.
MIN_SECRET_CHARS = 8
MAX_SECRET_CHARS = 4096


def _audit_view(credential: Credential) -> dict[str, object]:
    return {
        "name": credential.name,
        "hint": credential.hint,
        "allowed_hosts": list(credential.allowed_hosts),
    }


def credential_create(
    *,
    workspace: Workspace,
    name: str,
    secret: str,
    actor,
    allowed_hosts: str | list[str] | None = None,
) -> Credential:
    """Store ``secret`` encrypted under ``name`` in ``workspace``; audited without the secret.

    ``allowed_hosts``: where HTTP request nodes may send it (``catalog.hosts``; none: nowhere).
    The caller has checked that ``actor`` manages credentials (the page's permission).
    Raises ValidationError keyed by field for an empty or taken name, an unusable secret or a
    malformed host.
    """
    name = name.strip()
    # Pasted keys often carry a newline or spaces; a key itself never has them at its ends.
    secret = secret.strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["A credential needs a name."]
    elif len(name) > Credential._meta.get_field("name").max_length:
        errors["name"] = ["The name is too long (200 characters at most)."]
    elif Credential.objects.filter(workspace=workspace, name=name).exists():
        errors["name"] = [f"A credential named {name!r} already exists here."]
    if len(secret) < MIN_SECRET_CHARS:
        errors["secret"] = [f"The secret must be at least {MIN_SECRET_CHARS} characters."]
    elif len(secret) > MAX_SECRET_CHARS:
        errors["secret"] = [f"The secret must be at most {MAX_SECRET_CHARS} characters."]
    elif any(c in secret for c in "\r\n\x00"):
        errors["secret"] = ["The secret must be one line."]
    try:
        hosts = hosts_clean(allowed_hosts)
    except ValidationError as exc:
        errors["allowed_hosts"] = exc.messages
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        credential = Credential.objects.create(
            workspace=workspace,
            name=name,
            ciphertext=encrypt(secret),
            hint=secret[-HINT_CHARS:],
            allowed_hosts=hosts,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        audit_record(
            workspace=workspace,
            actor=actor,
            action="credential.create",
            target=credential,
            after=_audit_view(credential),
        )
    return credential


def credential_hosts_set(
    *, credential: Credential, allowed_hosts: str | list[str] | None, actor
) -> Credential:
    """Set where HTTP request nodes may send ``credential`` (empty: nowhere); audited with the
    hosts before and after. ValidationError (``allowed_hosts``) for a malformed entry."""
    try:
        hosts = hosts_clean(allowed_hosts)
    except ValidationError as exc:
        raise ValidationError({"allowed_hosts": exc.messages}) from None
    with transaction.atomic():
        locked = Credential.objects.select_for_update().defer("ciphertext").get(pk=credential.pk)
        before = _audit_view(locked)
        locked.allowed_hosts = hosts
        locked.save(update_fields=["allowed_hosts"])
        audit_record(
            workspace=locked.workspace_id,
            actor=actor,
            action="credential.hosts",
            target=locked,
            before=before,
            after=_audit_view(locked),
        )
    credential.allowed_hosts = hosts
    return credential


def credential_delete(*, credential: Credential, actor) -> None:
    """Delete a credential no model uses; ValidationError naming the models that still do.

    The row is locked first, so a model cannot start using it between the check and the delete
    (the foreign key is PROTECT as a last line of defence).
    """
    with transaction.atomic():
        locked = Credential.objects.select_for_update().get(pk=credential.pk)
        users = list(locked.models.order_by("name").values_list("name", flat=True))
        if users:
            raise ValidationError(
                f"The credential {locked.name!r} is used by {', '.join(users)}: "
                "give those models another credential (or delete them) first."
            )
        audit_record(
            workspace=locked.workspace_id,
            actor=actor,
            action="credential.delete",
            target=locked,
            before=_audit_view(locked),
        )
        locked.delete()
