"""Flows that leave or arrive whole: export to a file, import from one, duplicate, and create
a new flow from a graph (blank or a starter).

The file format, JSON or YAML::

    {"studio_flow": 1, "name": "…", "slug": "…", "description": "…", "graph": {…}}

An imported file is checked at the edge (the envelope by pydantic, the graph by
``check_graph`` against the importing workspace and user) and refused whole, with every
problem listed, or becomes a new flow whose first version and draft are its graph.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from flows.editor.graph_diff import graph_text
from flows.editor.redaction import graph_redacted
from flows.models import Flow, FlowVersion, VersionKind
from flows.schema import GraphError, check_graph
from flows.services.flows import flow_create
from workspaces.audit import audit_record
from workspaces.models import Workspace

FORMAT_VERSION = 1
MAX_FILE_BYTES = 1024 * 1024
FORMATS = ("json", "yaml")
SLUG_MAX = 100  # Flow.slug
NAME_MAX = 200  # Flow.name
# A concurrent create may take the free slug between the lookup and the insert: look again.
SLUG_ATTEMPTS = 3


class FlowFile(BaseModel):
    """The envelope of an exported flow."""

    model_config = ConfigDict(extra="forbid")
    studio_flow: Literal[1]
    name: str = Field(min_length=1, max_length=NAME_MAX)
    slug: str = Field(default="", max_length=SLUG_MAX, pattern=r"^[-a-zA-Z0-9_]*$")
    description: str = Field(default="", max_length=10_000)
    graph: dict[str, Any]


class ImportRefused(ValueError):
    """A file that cannot become a flow; ``errors`` has one message per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content_type: str
    content: bytes


# --- export ---------------------------------------------------------------------------------


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (prompts, templates) as YAML blocks, which read as written."""


def _str_block(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_block)


def flow_export(*, flow: Flow, version: FlowVersion, fmt: str) -> ExportFile:
    """``version`` of ``flow`` as a file in ``fmt`` (``json`` or ``yaml``), secrets masked
    (``flows.editor.redaction``)."""
    if fmt not in FORMATS:
        raise ValidationError(f"format: choose json or yaml, not {fmt!r}.")
    envelope = {
        "studio_flow": FORMAT_VERSION,
        "name": flow.name,
        "slug": flow.slug,
        "description": flow.description,
        # Nodes before edges, keys sorted: the stored JSON's key order is the database's.
        # A file travels: a secret typed into a graph before that was refused stays behind
        # (credentials are referenced by name, and never leave the studio).
        "graph": json.loads(graph_text(graph_redacted(version.graph))),
    }
    return envelope_file(envelope, f"{flow.slug}-v{version.number}", fmt)


def envelope_file(envelope: dict[str, Any], name: str, fmt: str) -> ExportFile:
    """``envelope`` as the file ``<name>.<fmt>`` (agents export in the same format)."""
    filename = f"{name}.{fmt}"
    if fmt == "yaml":
        text = yaml.dump(envelope, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True)
        return ExportFile(filename, "application/yaml; charset=utf-8", text.encode())
    text = json.dumps(envelope, indent=2, ensure_ascii=False) + "\n"
    return ExportFile(filename, "application/json; charset=utf-8", text.encode())


# --- reading a file -------------------------------------------------------------------------


def _is_yaml(filename: str) -> bool:
    return filename.lower().endswith((".yaml", ".yml"))


def _load_yaml(text: str) -> Any:
    # Aliases let a small file expand into a huge graph ("billion laughs"); exports never
    # use them, so a file that does is refused before anything is built from it.
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise ImportRefused(["file: YAML anchors and aliases (*name) are not accepted"])
    return yaml.safe_load(text)


def file_parse(data: bytes, filename: str) -> Any:
    """The file's content as Python data; ImportRefused says why it is not JSON or YAML
    (YAML aliases refused). Agents' imports read their files with it too."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused(["file: this is not UTF-8 text"]) from None
    try:
        if _is_yaml(filename):
            return _load_yaml(text)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            if filename.lower().endswith(".json"):
                raise ImportRefused(
                    [f"file: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"]
                ) from None
            return _load_yaml(text)  # no telling extension: JSON, else YAML
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ImportRefused([f"file: not valid YAML ({where}{problem})"]) from None
    except RecursionError:
        raise ImportRefused(["file: it is nested too deeply"]) from None


def _envelope_errors(exc: PydanticError) -> list[str]:
    errors = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        if where == "studio_flow":
            errors.append(
                'studio_flow: this is not a flow file of the studio (it needs "studio_flow": 1)'
            )
        else:
            errors.append(f"{where or 'file'}: {error['msg']}")
    return errors


def flow_file_read(*, data: bytes, filename: str, workspace: Workspace, user=None) -> FlowFile:
    """The checked envelope of an uploaded file; ImportRefused lists every problem: the
    envelope's fields and the graph's nodes (a model or knowledge base this workspace does not
    have, or that ``user`` may not use), together."""
    if len(data) > MAX_FILE_BYTES:
        raise ImportRefused([f"file: larger than {MAX_FILE_BYTES // 1024} KB"])
    content = file_parse(data, filename)
    if not isinstance(content, dict):
        raise ImportRefused(["file: expected an object with studio_flow, name and graph"])
    errors: list[str] = []
    envelope = None
    try:
        envelope = FlowFile.model_validate(content)
    except PydanticError as exc:
        errors += _envelope_errors(exc)
    graph = content.get("graph")
    if isinstance(graph, dict):
        try:
            check_graph(graph, workspace, user)
        except GraphError as exc:
            errors += exc.errors
    if errors or envelope is None:
        raise ImportRefused(errors)
    return envelope


# --- creating -------------------------------------------------------------------------------


def _free_slug(workspace: Workspace, wanted: str) -> str:
    """``wanted`` if no flow of the workspace has it, else ``wanted-2``, ``wanted-3``…"""
    base = (slugify(wanted) or "flow")[: SLUG_MAX - 6].strip("-") or "flow"
    taken = set(
        Flow.objects.filter(workspace=workspace, slug__startswith=base).values_list(
            "slug", flat=True
        )
    )
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def flow_create_with_draft(
    *,
    workspace: Workspace,
    name: str,
    graph: dict,
    user=None,
    slug: str = "",
    description: str = "",
    note: str = "",
    response_cache: bool = True,
) -> Flow:
    """A new flow under a free slug (``slug``, else the name's, suffixed ``-2``… when taken)
    whose version 1 (with ``note``) and draft are ``graph``. GraphError names each bad node;
    nothing is stored then."""
    attempts = SLUG_ATTEMPTS
    while True:
        try:
            return _create(
                workspace=workspace,
                slug=_free_slug(workspace, slug or name),
                name=name[:NAME_MAX],
                graph=graph,
                user=user,
                description=description,
                note=note,
                response_cache=response_cache,
            )
        except IntegrityError:
            attempts -= 1
            if not attempts:
                raise


@transaction.atomic
def _create(
    *,
    workspace: Workspace,
    slug: str,
    name: str,
    graph: dict,
    user,
    description: str,
    note: str,
    response_cache: bool,
) -> Flow:
    flow = flow_create(workspace=workspace, slug=slug, name=name, graph=graph, user=user)
    # Part of the creation, in its transaction: no one sees version 1 without its note.
    FlowVersion.objects.filter(flow=flow, kind=VersionKind.VERSION).update(note=note)
    flow.description = description
    flow.response_cache = response_cache
    flow.draft = graph
    flow.draft_saved_at = timezone.now()
    flow.draft_saved_by = user
    flow.save(
        update_fields=[
            "description",
            "response_cache",
            "draft",
            "draft_saved_at",
            "draft_saved_by",
            "updated_at",
        ]
    )
    return flow


def flow_import(*, workspace: Workspace, data: bytes, filename: str, user=None) -> Flow:
    """A new flow from an exported file (``flow_file_read``'s checks; ImportRefused lists its
    problems and nothing is stored)."""
    envelope = flow_file_read(data=data, filename=filename, workspace=workspace, user=user)
    with transaction.atomic():
        flow = flow_create_with_draft(
            workspace=workspace,
            name=envelope.name,
            graph=envelope.graph,
            user=user,
            slug=envelope.slug,
            description=envelope.description,
            note=f"Imported from {filename}"[:500],
        )
        audit_record(
            workspace=workspace,
            actor=user,
            action="flow.import",
            target=flow,
            after={"file": filename, "slug": flow.slug, "slug_in_file": envelope.slug},
        )
    return flow


def flow_duplicate(*, flow: Flow, user=None) -> Flow:
    """A copy of ``flow`` named "<name> (copy)": its draft, else its latest version, becomes
    the copy's version 1 and draft. GraphError when that graph does not pass the checks (a
    draft in progress, or a model ``user`` may not use)."""
    if flow.draft is not None:
        graph, source = flow.draft, "draft"
    else:
        latest = (
            flow.versions.filter(kind=VersionKind.VERSION, number__isnull=False)
            .order_by("-number")
            .first()
        )
        if latest is None:
            raise ValidationError(f"{flow.name} has no version to copy.")
        graph, source = latest.graph, f"v{latest.number}"
    with transaction.atomic():
        copy = flow_create_with_draft(
            workspace=flow.workspace,
            name=f"{flow.name} (copy)",
            graph=graph,
            user=user,
            slug=f"{flow.slug}-copy",
            description=flow.description,
            note=f"Copied from {flow.name} ({source})"[:500],
            response_cache=flow.response_cache,
        )
        audit_record(
            workspace=flow.workspace_id,
            actor=user,
            action="flow.duplicate",
            target=copy,
            after={"from": flow.slug, "source": source, "slug": copy.slug},
        )
    return copy
