"""Forms of the knowledge pages: a base's settings, adding documents, metadata, a chunk's text,
and the retrieval test.

The forms only turn what was typed into values ("key=value" lines into dicts); the services
check those values and their errors are shown in the forms.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from pydantic import ValidationError as SchemaError

from catalog.models import Model
from knowledge.models import KnowledgeBase, SearchMode, Splitter
from knowledge.retrieval import MAX_QUERY_CHARS, RetrievalOptions
from knowledge.search import MetadataFilters
from knowledge.services.bases import BaseSettings
from knowledge.services.chunks import MAX_CHUNK_CHARS
from knowledge.services.documents import MAX_PASTE_CHARS, metadata_clean, paste_too_long
from studio.slugs import SlugFromNameMixin

MAX_LINES_CHARS = 50_000


def key_values_parse(text: str, *, repeats: bool = False) -> dict[str, Any]:
    """``key=value`` lines as a dict of strings. Blank lines are skipped; a value may hold
    ``=``. With ``repeats`` a key given again collects its values in a list (a filter matching
    any of them); without, the last one wins. ValidationError names the first bad line."""
    values: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValidationError(f"line {number} is not key=value: {line.strip()[:80]!r}")
        if repeats and key in values:
            previous = values[key]
            values[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            values[key] = value
    return values


def key_values_text(values: dict[str, Any]) -> str:
    """The inverse of ``key_values_parse`` for the metadata forms' initial text."""
    return "\n".join(f"{key}={value}" for key, value in values.items())


class KeyValuesField(forms.CharField):
    """A textarea of ``key=value`` lines, cleaned to a dict of strings."""

    def __init__(self, *, repeats: bool = False, **kwargs) -> None:
        self.repeats = repeats
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", MAX_LINES_CHARS)
        kwargs.setdefault(
            "widget", forms.Textarea(attrs={"rows": 3, "class": "code", "spellcheck": "false"})
        )
        super().__init__(**kwargs)

    def clean(self, value: Any) -> dict[str, Any]:
        return key_values_parse(super().clean(value) or "", repeats=self.repeats)


class KnowledgeBaseForm(SlugFromNameMixin, forms.Form):
    """A base's settings. ``slug`` is asked only on creation; the embedding model is fixed
    (``lock_embedding``) once the base holds documents."""

    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=100, help_text="How flows, agents and the API name the base, e.g. handbook."
    )
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=5000
    )
    embedding_model = forms.ModelChoiceField(
        queryset=Model.objects.none(),
        empty_label=None,
        help_text="Embeds chunks and queries; it cannot change once the base holds documents.",
    )
    splitter = forms.ChoiceField(choices=Splitter.choices)
    chunk_size = forms.IntegerField(
        min_value=1, initial=200, help_text="In tokens; applies to documents ingested from now on."
    )
    chunk_overlap = forms.IntegerField(min_value=0, initial=20, help_text="In tokens.")
    search_mode = forms.ChoiceField(choices=SearchMode.choices)
    top_k = forms.IntegerField(min_value=1, max_value=100, initial=5, label="Top k")
    score_threshold = forms.FloatField(
        initial=0.0,
        help_text="Results scoring below it are dropped. It applies to dense similarity (-1 to "
        "1) and reranker scores only: keyword and hybrid scores are ranks, not measures.",
    )
    rerank = forms.BooleanField(required=False, help_text="Reorder the results with a reranker.")
    reranker = forms.ModelChoiceField(
        queryset=Model.objects.none(), required=False, empty_label="none"
    )

    def __init__(
        self,
        *args,
        embedding_models,
        rerankers,
        creating: bool,
        lock_embedding: bool = False,
        workspace_id: int | None = None,
        **kwargs,
    ) -> None:
        """``workspace_id``: where a new base goes, so that a slug made from the name is free
        there (without it, a taken slug is the service's error)."""
        super().__init__(*args, **kwargs)
        self.fields["embedding_model"].queryset = embedding_models
        self.fields["reranker"].queryset = rerankers
        if not creating:
            del self.fields["slug"]
        elif workspace_id is not None:
            self.slug_taken = KnowledgeBase.objects.filter(workspace_id=workspace_id)
        self.slug_from_name_setup()
        if lock_embedding:
            self.fields["embedding_model"].disabled = True

    @staticmethod
    def initial_for(base: KnowledgeBase) -> dict[str, Any]:
        return {
            "name": base.name,
            "description": base.description,
            "embedding_model": base.embedding_model_id,
            "splitter": base.splitter,
            "chunk_size": base.chunk_size,
            "chunk_overlap": base.chunk_overlap,
            "search_mode": base.search_mode,
            "top_k": base.top_k,
            "score_threshold": base.score_threshold,
            "rerank": base.rerank,
            "reranker": base.reranker_id,
        }

    def settings(self) -> BaseSettings:
        """The cleaned values for ``kb_create`` / ``kb_update`` (call after ``is_valid()``)."""
        data = self.cleaned_data
        return BaseSettings(
            name=data["name"],
            description=data["description"],
            embedding_model=data["embedding_model"],
            splitter=data["splitter"],
            chunk_size=data["chunk_size"],
            chunk_overlap=data["chunk_overlap"],
            search_mode=data["search_mode"],
            top_k=data["top_k"],
            score_threshold=data["score_threshold"],
            rerank=data["rerank"],
            reranker=data["reranker"],
        )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class FilesField(forms.FileField):
    """Any number of files, returned as they came: each is checked on its own by the service,
    so that one bad file does not refuse the others."""

    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list:
        files = [f for f in (data if isinstance(data, list | tuple) else [data]) if f]
        if not files:
            raise ValidationError("Choose at least one file.")
        return files


METADATA_HELP = "One key=value per line; values are stored as text. Filters match them exactly."


class MetadataField(KeyValuesField):
    """Document metadata as ``key=value`` lines, checked as the services check it."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("help_text", METADATA_HELP)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> dict[str, Any]:
        return metadata_clean(super().clean(value))


class _OwnIds(forms.Form):
    """A form sharing its page with others: its fields' ids start with ``ids``, not ``id``."""

    ids = "id"

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", f"{self.ids}-%s")
        super().__init__(*args, **kwargs)


class UploadForm(_OwnIds):
    ids = "upload"

    files = FilesField(label="Files")
    metadata = MetadataField()


class TextForm(_OwnIds):
    """Pasted text. No ``maxlength`` on the box: the browser would cut a long paste silently;
    the page's script (``static/knowledge/paste.js``) says how big it is and holds the button
    back past ``MAX_PASTE_CHARS``, and a text over it is refused here and not shown again."""

    ids = "text"

    name = forms.CharField(max_length=300, help_text="Ending in .md, the text is read as Markdown.")
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "data-max-chars": MAX_PASTE_CHARS}),
        strip=False,
        help_text=f"At most {MAX_PASTE_CHARS:,} characters; upload a file for more.",
    )
    metadata = MetadataField()

    def clean_text(self) -> str:
        text = self.cleaned_data["text"]
        if reason := paste_too_long(text):
            raise ValidationError(
                f"{reason[0].upper()}{reason[1:]}. Nothing was added, and the text is not kept "
                "here: paste a shorter part, or upload it as a file."
            )
        return text

    def full_clean(self) -> None:
        super().full_clean()
        if self.is_bound and paste_too_long(self.data.get("text", "")):
            # Not echoed back into the page: the refused text would weigh it down as much.
            self.data = self.data.copy()
            self.data["text"] = ""


class UrlForm(_OwnIds):
    ids = "url"

    url = forms.CharField(
        max_length=2000,
        label="Address",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/handbook"}),
        help_text="Fetched by a worker now and again at every re-ingestion.",
    )
    name = forms.CharField(
        max_length=300, required=False, help_text="Empty: made from the address."
    )
    metadata = MetadataField()


class MetadataForm(forms.Form):
    metadata = MetadataField(
        help_text=METADATA_HELP + " Saving replaces all the document's metadata."
    )


class ChunkForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), max_length=MAX_CHUNK_CHARS)


class ChunkToggleForm(forms.Form):
    enabled = forms.TypedChoiceField(
        choices=[("on", "on"), ("off", "off")], coerce=lambda value: value == "on"
    )


class RetrievalTestForm(forms.Form):
    """A query and what it may override of the base's retrieval settings (empty: the base's).
    Once valid, ``cleaned_data["options"]`` holds the ``RetrievalOptions``."""

    query = forms.CharField(max_length=MAX_QUERY_CHARS, widget=forms.Textarea(attrs={"rows": 2}))
    mode = forms.ChoiceField(choices=[("", "the base's"), *SearchMode.choices], required=False)
    top_k = forms.IntegerField(min_value=1, max_value=100, required=False, label="Top k")
    rerank = forms.ChoiceField(
        choices=[("", "the base's"), ("on", "on"), ("off", "off")], required=False
    )
    filters = KeyValuesField(
        repeats=True,
        label="Metadata filters",
        help_text="key=value lines; every key must match, a key given twice matches either value.",
    )

    def __init__(self, *args, knowledge_base: KnowledgeBase, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.knowledge_base = knowledge_base

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        rerank = {"on": True, "off": False}.get(cleaned["rerank"])
        if (self.knowledge_base.rerank if rerank is None else rerank) and (
            self.knowledge_base.reranker_id is None
        ):
            self.add_error("rerank", "The base has no reranker; choose one in its settings.")
            return cleaned
        try:
            filters = MetadataFilters(filters=cleaned["filters"]).filters
            cleaned["options"] = RetrievalOptions(
                top_k=cleaned["top_k"], mode=cleaned["mode"] or None, rerank=rerank, filters=filters
            )
        except SchemaError as exc:
            self.add_error(
                "filters", [e["msg"].removeprefix("Value error, ") for e in exc.errors()]
            )
        return cleaned
