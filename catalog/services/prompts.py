"""Writes of the prompt library: prompts, their versions, publishing and approval.

A version is a draft while ``published_at`` is empty and may then be edited; publishing freezes it
for good (a flow may pin it by number, so its text must never move under the flow). Only a
published version can be approved, and flows that do not pin a number follow the latest approved
version. Every change is audited inside its transaction with before/after snapshots; who may make
it is checked by the caller through ``studio.access``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from catalog.models import Prompt, PromptStatus, PromptVersion
from catalog.prompt_text import prompt_variables
from workspaces.audit import audit_record, snapshot
from workspaces.models import Workspace
from workspaces.sharing import creator_grant

PROMPT_FIELDS = ("slug", "name", "description")
VERSION_FIELDS = (
    "number",
    "system",
    "template",
    "variables",
    "note",
    "status",
    "published_at",
    "approved_by",
    "approved_at",
)
# Generous, but bounded: the LLM node accepts prompts of up to this many characters.
MAX_TEXT = 100_000


def _version_snapshot(version: PromptVersion) -> dict[str, Any]:
    return {"prompt": version.prompt.slug, **snapshot(version, VERSION_FIELDS)}


def _clean_text(system: str, template: str, note: str) -> None:
    errors: dict[str, str] = {}
    if not template.strip():
        errors["template"] = "The template is empty: write the prompt text."
    elif len(template) > MAX_TEXT:
        errors["template"] = f"The template is longer than {MAX_TEXT:,} characters."
    if len(system) > MAX_TEXT:
        errors["system"] = f"The system text is longer than {MAX_TEXT:,} characters."
    if len(note) > PromptVersion._meta.get_field("note").max_length:
        errors["note"] = "The note is longer than 500 characters."
    if errors:
        raise ValidationError(errors)


def _touch(prompt: Prompt) -> None:
    # The list orders and shows prompts by their last change, whichever version it was.
    prompt.save(update_fields=["updated_at"])


def prompt_create(
    *,
    workspace: Workspace,
    slug: str,
    name: str,
    template: str,
    description: str = "",
    system: str = "",
    actor=None,
) -> Prompt:
    """A prompt with its first version (a draft). ValidationError names each bad field.

    A limited member sees only what is shared with them, so they are granted what they create.
    """
    try:
        validate_slug(slug)
    except ValidationError:
        raise ValidationError(
            {"slug": "Use letters, numbers, hyphens and underscores only."}
        ) from None
    if not name.strip():
        raise ValidationError({"name": "Give the prompt a name."})
    _clean_text(system, template, "")
    if Prompt.objects.filter(workspace=workspace, slug=slug).exists():
        raise ValidationError({"slug": f"This workspace already has a prompt {slug!r}."})
    try:
        with transaction.atomic():
            prompt = Prompt.objects.create(
                workspace=workspace,
                slug=slug,
                name=name.strip(),
                description=description,
                created_by=actor,
            )
            audit_record(
                workspace=workspace,
                actor=actor,
                action="prompt.create",
                target=prompt,
                after=snapshot(prompt, PROMPT_FIELDS),
            )
            prompt_version_create(prompt=prompt, system=system, template=template, actor=actor)
            creator_grant(obj=prompt, user=actor)
    except IntegrityError:
        # Two creates of one slug raced past the check above: the constraint decided.
        raise ValidationError({"slug": f"This workspace already has a prompt {slug!r}."}) from None
    return prompt


def prompt_version_create(
    *, prompt: Prompt, system: str, template: str, note: str = "", actor=None
) -> PromptVersion:
    """The prompt's next version, a draft holding exactly the given text (nothing is copied
    from earlier versions). The prompt row is locked so two saves cannot take one number."""
    _clean_text(system, template, note)
    with transaction.atomic():
        Prompt.objects.select_for_update().filter(id=prompt.id).first()
        number = (prompt.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = PromptVersion.objects.create(
            prompt=prompt,
            number=number,
            system=system,
            template=template,
            variables=prompt_variables(system, template),
            note=note,
            created_by=actor,
        )
        _touch(prompt)
        audit_record(
            workspace=prompt.workspace_id,
            actor=actor,
            action="prompt.version.create",
            target=version,
            after=_version_snapshot(version),
        )
    return version


def _locked(version: PromptVersion) -> PromptVersion:
    """The version's row as it is now, locked until the transaction ends: a publish and an edit
    racing each other see each other's result instead of both passing their check."""
    return PromptVersion.objects.select_for_update().select_related("prompt").get(id=version.id)


def prompt_version_update(
    *, version: PromptVersion, system: str, template: str, note: str = "", actor=None
) -> PromptVersion:
    """Change the text of a draft; returns the saved row. A published version is immutable:
    ValidationError, and nothing changes."""
    _clean_text(system, template, note)
    with transaction.atomic():
        current = _locked(version)
        if current.published_at is not None:
            raise ValidationError(
                f"Version {current.number} is published and can no longer change: "
                "save a new version instead."
            )
        before = _version_snapshot(current)
        current.system, current.template, current.note = system, template, note
        current.variables = prompt_variables(system, template)
        current.save(update_fields=["system", "template", "note", "variables", "updated_at"])
        _touch(current.prompt)
        audit_record(
            workspace=current.prompt.workspace_id,
            actor=actor,
            action="prompt.version.change",
            target=current,
            before=before,
            after=_version_snapshot(current),
        )
    return current


def prompt_version_publish(*, version: PromptVersion, actor=None) -> PromptVersion:
    """Freeze a draft: from now on flows may pin it and it can be approved, never edited."""
    with transaction.atomic():
        current = _locked(version)
        if current.published_at is not None:
            raise ValidationError(f"Version {current.number} is already published.")
        before = _version_snapshot(current)
        current.published_at = timezone.now()
        current.save(update_fields=["published_at", "updated_at"])
        _touch(current.prompt)
        audit_record(
            workspace=current.prompt.workspace_id,
            actor=actor,
            action="prompt.version.publish",
            target=current,
            before=before,
            after=_version_snapshot(current),
        )
    return current


def prompt_version_approve(*, version: PromptVersion, actor=None) -> PromptVersion:
    """Approve a published version: flows that follow the prompt use the latest approved one."""
    with transaction.atomic():
        current = _locked(version)
        if current.published_at is None:
            raise ValidationError(
                f"Version {current.number} is a draft: publish it before approving it."
            )
        if current.status == PromptStatus.APPROVED:
            raise ValidationError(f"Version {current.number} is already approved.")
        before = _version_snapshot(current)
        current.status = PromptStatus.APPROVED
        current.approved_by = actor if getattr(actor, "is_authenticated", False) else None
        current.approved_at = timezone.now()
        current.save(update_fields=["status", "approved_by", "approved_at", "updated_at"])
        _touch(current.prompt)
        audit_record(
            workspace=current.prompt.workspace_id,
            actor=actor,
            action="prompt.version.approve",
            target=current,
            before=before,
            after=_version_snapshot(current),
        )
    return current


def prompt_delete(*, prompt: Prompt, actor=None) -> None:
    """Delete a prompt with its versions and grants. Flows that name it fail their check."""
    with transaction.atomic():
        audit_record(
            workspace=prompt.workspace_id,
            actor=actor,
            action="prompt.delete",
            target=prompt,
            before={
                **snapshot(prompt, PROMPT_FIELDS),
                "versions": [
                    {"number": number, "status": status, "published": published is not None}
                    for number, status, published in prompt.versions.values_list(
                        "number", "status", "published_at"
                    )
                ],
            },
        )
        prompt.delete()
