"""Agents that leave or arrive whole: export an agent's draft or a published version to a file,
and import one as a new agent.

The file format, JSON or YAML, as flows export theirs (``flows/services/transfer.py``: the
same size limit, parser and writer)::

    {"studio_agent": 1, "name": "…", "slug": "…", "description": "…", "spec": {…}}

An imported file is checked at the edge: the envelope and the spec by pydantic (``AgentSpec``;
unknown fields refused), and a file that fails is refused whole with every problem listed. A
spec that reads well but names what the importing workspace lacks (a model, a knowledge base, a
flow, an agent, an MCP credential), or what the importer may not use, still becomes a new agent:
its draft, with those problems listed for the importer to fix. It cannot be published until
they are (``agent_publish`` checks the draft again).

A spec holds no secrets (credentials are named, never stored in it), so it is exported whole.
"""

from __future__ import annotations

from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from agents.models import Agent, AgentVersion
from agents.services import Problem, SpecRefused, agent_create, agent_spec_check
from agents.spec import AgentSpec
from flows.services.transfer import (
    FORMATS,
    MAX_FILE_BYTES,
    ExportFile,
    ImportRefused,
    envelope_file,
    file_parse,
)
from studio.slugs import slug_from, slug_unique
from workspaces.audit import audit_record
from workspaces.models import Workspace

__all__ = ["FORMATS", "MAX_FILE_BYTES", "ImportRefused", "agent_export", "agent_import"]

FORMAT_VERSION = 1
SLUG_MAX = 100  # Agent.slug
NAME_MAX = 200  # Agent.name
# A concurrent create may take the free slug between the lookup and the insert: look again.
SLUG_ATTEMPTS = 3


class AgentFile(BaseModel):
    """The envelope of an exported agent."""

    model_config = ConfigDict(extra="forbid")
    studio_agent: Literal[1]
    name: str = Field(min_length=1, max_length=NAME_MAX)
    slug: str = Field(default="", max_length=SLUG_MAX, pattern=r"^[-a-zA-Z0-9_]*$")
    description: str = Field(default="", max_length=5_000)
    spec: AgentSpec


def agent_export(*, agent: Agent, version: AgentVersion | None, fmt: str) -> ExportFile:
    """``version`` of ``agent`` (None: its draft) as a file in ``fmt`` (``json`` or ``yaml``).
    ValidationError for another format, or a draft not saved yet."""
    if fmt not in FORMATS:
        raise ValidationError(f"format: choose json or yaml, not {fmt!r}.")
    if version is None and agent.draft is None:
        raise ValidationError(f"{agent.name} has no saved settings to export yet.")
    spec = version.spec if version is not None else agent.draft
    envelope = {
        "studio_agent": FORMAT_VERSION,
        "name": agent.name,
        "slug": agent.slug,
        "description": agent.description,
        "spec": spec,
    }
    which = f"v{version.number}" if version is not None else "draft"
    return envelope_file(envelope, f"{agent.slug}-{which}", fmt)


def _envelope_errors(exc: PydanticError) -> list[str]:
    errors = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        if where == "studio_agent":
            errors.append(
                'studio_agent: this is not an agent file of the studio (it needs "studio_agent": 1)'
            )
        else:
            message = error["msg"].removeprefix("Value error, ")
            errors.append(f"{where or 'file'}: {message}")
    return errors


def agent_file_read(*, data: bytes, filename: str) -> AgentFile:
    """The checked envelope of an uploaded file; ImportRefused lists every problem."""
    if len(data) > MAX_FILE_BYTES:
        raise ImportRefused([f"file: larger than {MAX_FILE_BYTES // 1024} KB"])
    content = file_parse(data, filename)
    if not isinstance(content, dict):
        raise ImportRefused(["file: expected an object with studio_agent, name and spec"])
    try:
        return AgentFile.model_validate(content)
    except PydanticError as exc:
        raise ImportRefused(_envelope_errors(exc)) from None


def agent_import(
    *, workspace: Workspace, data: bytes, filename: str, user=None
) -> tuple[Agent, list[Problem]]:
    """A new agent from an exported file, under the file's slug (suffixed ``-2``… when taken),
    its draft the file's spec; and the spec's problems in this workspace for ``user`` (empty:
    it can be published as it is). ImportRefused, nothing stored, when the file does not read
    as an agent."""
    envelope = agent_file_read(data=data, filename=filename)
    spec = envelope.spec.model_dump(mode="json")
    try:
        agent_spec_check(spec=spec, workspace=workspace, user=user)
        problems: list[Problem] = []
    except SpecRefused as exc:
        problems = exc.problems
    attempts = SLUG_ATTEMPTS
    while True:
        try:
            agent = _create(workspace, envelope, spec, problems, filename, user)
            return agent, problems
        except (IntegrityError, ValidationError):
            attempts -= 1
            if not attempts:
                raise


@transaction.atomic
def _create(
    workspace: Workspace,
    envelope: AgentFile,
    spec: dict[str, Any],
    problems: list[Problem],
    filename: str,
    user,
) -> Agent:
    base = slug_from(envelope.slug or envelope.name, SLUG_MAX) or "agent"
    slug = slug_unique(base, Agent.objects.filter(workspace=workspace), SLUG_MAX)
    agent = agent_create(
        workspace=workspace,
        name=envelope.name,
        slug=slug,
        description=envelope.description,
        actor=user,
    )
    # The spec as the file has it, problems and all: the importer fixes them in the builder.
    Agent.objects.filter(id=agent.id).update(draft=spec)
    agent.draft = spec
    audit_record(
        workspace=workspace,
        actor=user,
        action="agent.import",
        target=agent,
        after={
            "file": filename[:200],
            "slug": agent.slug,
            "slug_in_file": envelope.slug,
            "problems": [str(p) for p in problems],
        },
    )
    return agent
