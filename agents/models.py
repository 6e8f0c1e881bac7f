"""Agents and their immutable published versions: each stores an ``AgentSpec`` as JSON."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from pgvector.django import VectorField

from flows.models import Flow
from workspaces.models import WorkspaceOwned, grant_models


class Agent(WorkspaceOwned):
    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # The builder's working copy (an ``AgentSpec`` dumped as JSON), checked when saved; None
    # until the author first saves the settings. Never served: publishing copies it into the
    # next immutable version.
    draft = models.JSONField(null=True, blank=True)
    # The version that the chat page and the API run.
    published_version = models.ForeignKey(
        "AgentVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The hidden flow (kind "agent": input, this agent, output) that serves the published
    # version on the chat page, the widget and the APIs; made at the first publish
    # (``agents.services.agent_publish``), deleted with the agent. Its access is the agent's
    # (``agents.apps``: a delegate of ``studio.access``).
    flow = models.OneToOneField(
        Flow, null=True, blank=True, on_delete=models.SET_NULL, related_name="agent"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="agent_slug_per_workspace")
        ]
        permissions = [
            ("use_agent", "Can chat with the agent and read its runs"),
            ("publish_agent", "Can publish a version of the agent"),
            ("share_agent", "Can manage who can access the agent"),
        ]

    def __str__(self) -> str:
        return self.name


AgentUserObjectPermission, AgentGroupObjectPermission = grant_models(Agent)


class AgentVersion(models.Model):
    """A published spec. Immutable: publishing a changed draft adds the next version."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    spec = models.JSONField()
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "number"], name="agent_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.agent} v{self.number}"


class FactSource(models.TextChoices):
    TOOL = "tool", "Remembered by the agent"
    EXTRACTION = "extraction", "Extracted from the conversation"


class Fact(models.Model):
    """Something an agent remembers about one end user, recalled by relevance (``agents.memory``).

    No vector index: recall always filters by agent and subject, whose facts are few (capped at
    ``agents.memory.MAX_FACTS_PER_SUBJECT``), so an exact scan of the rows the B-tree on (agent,
    subject) finds is both exact and cheaper than an HNSW walk over every subject's facts.
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="facts", db_index=False)
    # Whom the fact is about: "user:<id>" for a member, "visitor:<hash>" for a widget visitor.
    subject = models.CharField(max_length=200)
    text = models.TextField()
    # Untyped: its dimension is the embedding model's; ``model_key`` says which model, and only
    # vectors of the same model are compared.
    embedding = VectorField()
    model_key = models.CharField(max_length=64)
    source = models.CharField(max_length=16, choices=FactSource.choices, default=FactSource.TOOL)
    # The agent run that stored it, as text (blank: not stored by a run).
    run_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["agent", "subject", "created_at"], name="fact_agent_subject")
        ]

    def __str__(self) -> str:
        return self.text[:80]
