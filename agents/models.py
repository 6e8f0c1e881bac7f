"""Agents and their immutable published versions: each stores an ``AgentSpec`` as JSON."""

from __future__ import annotations

from django.conf import settings
from django.db import models

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
