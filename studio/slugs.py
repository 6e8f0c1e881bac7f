"""Slugs derived from names: the same rule as static/studio/slug.js, and a form mixin that
fills an empty slug from the name (unique among the rows a form names), so a form works
without JavaScript too."""

from __future__ import annotations

import re
import unicodedata

from django import forms
from django.db.models import QuerySet

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# A derived slug that would be taken gets "-2", "-3"…; past this many, the service's own
# "taken" error is the honest answer.
MAX_SUFFIX = 100


def slug_from(name: str, max_length: int = 100) -> str:
    """Lowercase ASCII letters and digits joined by hyphens, at most ``max_length`` long:
    "Café Support Bot!" → "cafe-support-bot". Keep in step with slug.js's ``slugFrom``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _NOT_SLUG.sub("-", ascii_name.lower()).strip("-")
    return slug[:max_length].rstrip("-")


def slug_unique(base: str, taken: QuerySet | None, max_length: int = 100) -> str:
    """``base``, or ``base-2``, ``base-3``… if a row of ``taken`` already has that slug
    (None: nothing to check against). The check is advisory: a race is still refused by the
    table's unique constraint, through the service's error."""
    if taken is None:
        return base
    used = set(taken.filter(slug__startswith=base[: max_length - 4]).values_list("slug", flat=True))
    if base not in used:
        return base
    for n in range(2, MAX_SUFFIX + 1):
        suffix = f"-{n}"
        candidate = f"{base[: max_length - len(suffix)].rstrip('-')}{suffix}"
        if candidate not in used:
            return candidate
    return base


class SlugFromNameMixin:
    """For a form with ``name`` and ``slug`` fields: the slug is optional; left empty, it is
    derived from the name, unique among ``slug_taken`` (a queryset of the rows in the same
    workspace, set by the form; None skips the check). The slug input gets
    ``data-slug-from`` so that slug.js fills it as the user types the name."""

    slug_taken: QuerySet | None = None

    def slug_from_name_setup(self) -> None:
        """Call at the end of the form's ``__init__``."""
        fields = self.fields  # type: ignore[attr-defined]
        slug = fields.get("slug")
        if slug is None or "name" not in fields or slug.disabled:
            return
        slug.required = False
        # Not labelled "(optional)": it is never left without a value, only filled for you.
        slug.auto_filled = True
        slug.widget.attrs["data-slug-from"] = self["name"].auto_id  # type: ignore[index]
        note = "Left empty, it is made from the name."
        slug.help_text = f"{slug.help_text} {note}".strip() if slug.help_text else note

    def clean_slug(self) -> str:
        cleaned = self.cleaned_data  # type: ignore[attr-defined]
        slug = cleaned.get("slug") or ""
        if slug:
            return slug
        # ``name`` comes first in these forms, so it is cleaned already (if it is valid).
        name = cleaned.get("name") or self.data.get(self.add_prefix("name"), "")  # type: ignore[attr-defined]
        max_length = self.fields["slug"].max_length or 100  # type: ignore[attr-defined]
        base = slug_from(str(name), max_length)
        if not base:
            raise forms.ValidationError(
                "Give a slug: the name has no letters or digits to make one from."
            )
        if base == self.initial.get("slug"):  # type: ignore[attr-defined]
            return base  # an edit that cleared the slug keeps the entry's own
        return slug_unique(base, self.slug_taken, max_length)
