"""The model catalog: which models exist, where their weights are, and which engine serves them."""

from __future__ import annotations

from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase


class Task(models.TextChoices):
    CHAT = "chat", "Chat"
    COMPLETION = "completion", "Completion"
    EMBEDDING = "embedding", "Embedding"
    RERANK = "rerank", "Rerank"


class Status(models.TextChoices):
    AVAILABLE = "available", "Available"
    LOADING = "loading", "Loading"
    UNAVAILABLE = "unavailable", "Unavailable"


class Model(models.Model):
    """A model entry. ``workspace`` null means shared with every workspace (read-only to them)."""

    workspace = models.ForeignKey(
        "studio.Workspace", null=True, blank=True, on_delete=models.CASCADE, related_name="models"
    )
    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    task = models.CharField(max_length=16, choices=Task.choices, default=Task.CHAT)
    # A key of catalog.engines.ENGINES: "cpu", "echo", later "vllm", "openai_compatible".
    engine = models.CharField(max_length=32)
    # A local folder, a Hugging Face repo id, or "bundled:<name>" for weights shipped in a package.
    weights = models.CharField(max_length=500, blank=True)
    # Engine-specific settings, validated by the engine's pydantic ``Settings`` at the edge.
    settings = models.JSONField(default=dict, blank=True)
    context_length = models.PositiveIntegerField(default=2048)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.AVAILABLE)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="model_slug_per_workspace"),
            models.UniqueConstraint(
                fields=["slug"],
                condition=models.Q(workspace__isnull=True),
                name="model_slug_shared",
            ),
        ]
        permissions = [
            ("use_model", "Can use the model in flows and agents"),
            ("share_model", "Can manage who can access the model"),
        ]

    def __str__(self) -> str:
        return self.name


class ModelUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Model, on_delete=models.CASCADE)


class ModelGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Model, on_delete=models.CASCADE)
