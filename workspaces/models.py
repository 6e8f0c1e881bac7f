"""Workspaces (tenants), their members, teams, invitations, API keys and the audit log: the
things every app's objects belong to.

Per-object grants use django-guardian with direct foreign keys: each shareable model has a
``<Model>UserObjectPermission`` and ``<Model>GroupObjectPermission`` beside it, so a grant is a
row that the database deletes together with its object.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    EDITOR = "editor", "Editor"
    OPERATOR = "operator", "Operator"
    VIEWER = "viewer", "Viewer"


# Bounds of the request and token limits (``workspaces.quotas``): far above any real use, low
# enough that counters and forms never meet an overflow.
MAX_REQUESTS_PER_MINUTE = 1_000_000
MAX_TOKENS_PER_DAY = 10**12


def requests_per_minute_field() -> models.PositiveIntegerField:
    """How many API requests a minute (UTC, fixed window) may admit; null: no limit."""
    return models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_REQUESTS_PER_MINUTE)],
    )


def tokens_per_day_field() -> models.PositiveBigIntegerField:
    """How many model tokens (input + output) a UTC day may spend; null: no limit."""
    return models.PositiveBigIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TOKENS_PER_DAY)],
    )


class Workspace(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    # Over every API key and member of the workspace together (``workspaces.quotas``).
    requests_per_minute = requests_per_minute_field()
    tokens_per_day = tokens_per_day_field()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [
            ("manage_members", "Can invite members, change roles and manage teams"),
            ("view_audit", "Can read and export the audit log"),
            ("transfer_workspace", "Can transfer ownership of the workspace"),
        ]

    def __str__(self) -> str:
        return self.name


class WorkspaceOwned(models.Model):
    """An object that belongs to one workspace and goes with it. Its reverse name on the
    workspace is the plural of its class (``workspace.flows``, ``workspace.knowledgebases``)."""

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="%(class)ss"
    )

    class Meta:
        abstract = True


def grant_models(model: type[models.Model]) -> tuple[type, type]:
    """The django-guardian grant models of a shareable ``model``, with direct foreign keys: a
    grant to a user and one to a group (a team) are rows the database deletes with the object.
    Assign them in the model's module as ``<Model>UserObjectPermission`` and
    ``<Model>GroupObjectPermission``, the names guardian and the migrations know."""
    made = []
    for base, role in ((UserObjectPermissionBase, "User"), (GroupObjectPermissionBase, "Group")):
        attrs = {
            "__module__": model.__module__,
            "content_object": models.ForeignKey(model, on_delete=models.CASCADE),
        }
        made.append(type(f"{model.__name__}{role}ObjectPermission", (base,), attrs))
    return made[0], made[1]


class Membership(WorkspaceOwned):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    # A limited member's role applies only to the objects shared with them (or their teams);
    # they still create objects if the role allows, and are granted what they create.
    limited = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"


class Team(WorkspaceOwned):
    """A named group of a workspace's members; objects can be shared with it."""

    name = models.CharField(max_length=100)
    # The Django group that carries the team's members and guardian's group grants.
    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="team")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="team_name_per_workspace")
        ]

    def __str__(self) -> str:
        return self.name


class Invitation(WorkspaceOwned):
    """An invitation to join a workspace, accepted through a link that carries a secret token.
    Only a SHA-256 of the token is stored."""

    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    limited = models.BooleanField(default=False)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.workspace} ({self.role})"


KEY_PREFIX = "sk-studio-"


def hash_key_secret(secret: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


class FlowAccess(models.TextChoices):
    NONE = "none", "No access"
    RUN = "run", "Run, and read its own runs"
    WRITE = "write", "Run, and read and answer every API run"


class KnowledgeAccess(models.TextChoices):
    NONE = "none", "No access"
    READ = "read", "Read and retrieve"
    WRITE = "write", "Read, retrieve, add and delete documents"


class ApiKey(WorkspaceOwned):
    """A workspace's API key. Only a SHA-256 of the secret is stored; the key is shown once.

    What a key may do is its scopes (an access level per kind of object, optionally narrowed
    to chosen objects) bounded by what its creator may do now; ``studio.access`` checks both.
    """

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # Made on the host (``manage.py apikey``, code) rather than by a member, so no member's
    # rights bound it. A member's key whose creator was deleted is not one: it is refused.
    host_issued = models.BooleanField(default=False)
    flow_access = models.CharField(
        max_length=8, choices=FlowAccess.choices, default=FlowAccess.NONE
    )
    # Ids, not slugs: a flow deleted and made again under the same slug is not the chosen one.
    # None: every flow of the workspace.
    flow_ids = models.JSONField(null=True, blank=True)
    knowledge_access = models.CharField(
        max_length=8, choices=KnowledgeAccess.choices, default=KnowledgeAccess.NONE
    )
    knowledge_base_ids = models.JSONField(null=True, blank=True)
    # This key's own limits; the workspace's apply as well (``workspaces.quotas``).
    requests_per_minute = requests_per_minute_field()
    tokens_per_day = tokens_per_day_field()
    expires_at = models.DateTimeField(null=True, blank=True)
    # A key made before keys had scopes: refused until an admin confirms that it keeps the
    # whole workspace (every run included), or re-scopes it.
    legacy = models.BooleanField(default=False)
    legacy_confirmed_at = models.DateTimeField(null=True, blank=True)
    legacy_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [("share_apikey", "Can manage who can access the API key")]

    def __str__(self) -> str:
        return f"{self.name} ({KEY_PREFIX}{self.prefix}…)"

    @staticmethod
    def generate() -> tuple[str, str, str]:
        """Return ``(key, prefix, secret_hash)`` for a new key; the key is never stored."""
        prefix = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        return f"{KEY_PREFIX}{prefix}.{secret}", prefix, hash_key_secret(secret)


ApiKeyUserObjectPermission, ApiKeyGroupObjectPermission = grant_models(ApiKey)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuditEvent(models.Model):
    """One change: who, when, what, and the object's state before and after. Append-only."""

    workspace = models.ForeignKey(
        Workspace, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text so the entry still names them after the user or key is gone.
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="audit_workspace_time"),
            models.Index(fields=["workspace", "action"], name="audit_workspace_action"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"
