"""Reads of the prompt library: the prompts a member may see, the version a flow resolves to, and
the line diff of two versions."""

from __future__ import annotations

import difflib
from typing import NamedTuple

from django.db.models import Count, Max, Q, QuerySet

from catalog.models import Prompt, PromptStatus, PromptVersion
from studio import access


def prompts_visible(user, workspace_id: int) -> QuerySet[Prompt]:
    """The prompts of the workspace ``user`` may see, with their latest version number and
    their latest approved one (None when none is approved)."""
    return access.scope(user, workspace_id, Prompt.objects.all(), "view").annotate(
        version_count=Count("versions"),
        latest_number=Max("versions__number"),
        approved_number=Max("versions__number", filter=Q(versions__status=PromptStatus.APPROVED)),
    )


def prompt_versions(prompt: Prompt) -> QuerySet[PromptVersion]:
    """The versions of ``prompt``, newest first, with who wrote and approved them."""
    return prompt.versions.select_related("created_by", "approved_by").order_by("-number")


def _resolvable(workspace_id: int, slug: str, number: int | None) -> QuerySet[PromptVersion]:
    # Only published versions resolve: a draft may still change, so no flow may run it.
    versions = PromptVersion.objects.select_related("prompt").filter(
        prompt__workspace_id=workspace_id, prompt__slug=slug, published_at__isnull=False
    )
    if number is None:
        return versions.filter(status=PromptStatus.APPROVED).order_by("-number")
    return versions.filter(number=number)


def prompt_version_resolve(
    workspace_id: int, slug: str, number: int | None
) -> PromptVersion | None:
    """The version a flow runs: ``number`` if that version is published, else (``number`` None)
    the latest approved version; None when there is no such version. Its ``prompt`` is loaded."""
    return _resolvable(workspace_id, slug, number).first()


async def aprompt_version_resolve(
    workspace_id: int, slug: str, number: int | None
) -> PromptVersion | None:
    """``prompt_version_resolve`` for async callers (the LLM node)."""
    return await _resolvable(workspace_id, slug, number).afirst()


# --- diff -----------------------------------------------------------------------------------

SECTION = "section"
SAME = "same"
ADDED = "added"
REMOVED = "removed"


class DiffRow(NamedTuple):
    """One row of a diff. ``op``: ``section`` (a heading: "System" or "Template"), ``same``,
    ``added`` or ``removed``. ``text`` is the user's text as is: templates autoescape it."""

    op: str
    text: str


def _line_diff(old: str, new: str) -> list[DiffRow]:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [DiffRow(SAME, line) for line in old_lines[i1:i2]]
            continue
        # A replaced block reads as its old lines removed, then its new lines added.
        rows += [DiffRow(REMOVED, line) for line in old_lines[i1:i2]]
        rows += [DiffRow(ADDED, line) for line in new_lines[j1:j2]]
    return rows


def prompt_diff(a: PromptVersion, b: PromptVersion) -> list[DiffRow]:
    """What changed from ``a`` to ``b``, line by line: the system text (left out when both are
    empty), then the template. Whole texts are shown: prompts are short enough to read."""
    rows: list[DiffRow] = []
    if a.system or b.system:
        rows.append(DiffRow(SECTION, "System"))
        rows += _line_diff(a.system, b.system)
    rows.append(DiffRow(SECTION, "Template"))
    rows += _line_diff(a.template, b.template)
    return rows


def diff_counts(rows: list[DiffRow]) -> tuple[int, int]:
    """How many lines ``rows`` add and remove."""
    return (
        sum(1 for row in rows if row.op == ADDED),
        sum(1 for row in rows if row.op == REMOVED),
    )
