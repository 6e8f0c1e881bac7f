"""The model catalog: which models exist, where their weights are, and which engine serves them.

Also the things built on the catalog: LoRA adapters of a base model, encrypted credentials of
remote endpoints, routes over several models, the prompt library, and the usage of every call.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from workspaces.models import WorkspaceOwned, grant_models


class Task(models.TextChoices):
    CHAT = "chat", "Chat"
    COMPLETION = "completion", "Completion"
    EMBEDDING = "embedding", "Embedding"
    RERANK = "rerank", "Rerank"


class Status(models.TextChoices):
    AVAILABLE = "available", "Available"
    LOADING = "loading", "Loading"
    UNAVAILABLE = "unavailable", "Unavailable"


class Source(models.TextChoices):
    OPEN_WEIGHT = "open_weight", "Open-weight"
    FINE_TUNED = "fine_tuned", "Fine-tuned"
    PARTNER_API = "partner_api", "Partner API"
    FIRST_PARTY_API = "first_party_api", "First-party API"
    DOMAIN_SPECIFIC = "domain_specific", "Domain-specific"


class Credential(WorkspaceOwned):
    """A secret (an API key) for remote endpoints, stored encrypted (``catalog/secrets.py``).

    The secret is never shown again after it is saved: pages show its name and last characters.
    """

    name = models.CharField(max_length=200)
    ciphertext = models.BinaryField()
    hint = models.CharField(max_length=8, blank=True)  # the secret's last 4 characters
    # The hosts an HTTP request node may send the secret to ("api.github.com", "*.example.com"),
    # set by whoever manages credentials. Empty: no HTTP node may use it. Whoever edits a flow
    # picks the credential, but only an admin decides where it may go, so an editor cannot
    # send it to a server of theirs (catalog models are guarded by the same rule).
    allowed_hosts = ArrayField(models.CharField(max_length=253), default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="credential_name")
        ]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:  # never the ciphertext, in logs or tracebacks
        return f"<Credential {self.pk} {self.name!r}>"


class Model(models.Model):
    """A model entry. ``workspace`` null means shared with every workspace (read-only to them)."""

    workspace = models.ForeignKey(
        "workspaces.Workspace",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="models",
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
    revision = models.CharField(max_length=100, blank=True)
    quantization = models.CharField(max_length=32, blank=True)  # awq, gptq, fp8… ("" = none)
    dtype = models.CharField(max_length=16, blank=True)  # auto, float16, bfloat16, float32
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.OPEN_WEIGHT)
    context_length = models.PositiveIntegerField(default=2048)
    # Default sampling parameters (temperature, top_p, max_tokens), validated by
    # ``catalog.schemas.Sampling``; a node's own values win.
    sampling = models.JSONField(default=dict, blank=True)
    price_input = models.DecimalField(  # per million input tokens
        max_digits=12, decimal_places=4, default=Decimal("0")
    )
    price_output = models.DecimalField(  # per million output tokens
        max_digits=12, decimal_places=4, default=Decimal("0")
    )
    tags = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.AVAILABLE)
    description = models.TextField(blank=True)
    # The model card, markdown; rendered with raw HTML disabled (``catalog/cards.py``).
    card = models.TextField(blank=True)
    # The API key a remote (openai_compatible) endpoint needs.
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.PROTECT, related_name="models"
    )
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


ModelUserObjectPermission, ModelGroupObjectPermission = grant_models(Model)


class LoraAdapter(models.Model):
    """A LoRA adapter served on its base model (vLLM serves several adapters on one base)."""

    base = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="adapters")
    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    # A local folder or a Hugging Face repo id holding the adapter weights.
    weights = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["base", "slug"], name="adapter_slug_per_base")
        ]

    def __str__(self) -> str:
        return f"{self.base.slug}:{self.slug}"


class Strategy(models.TextChoices):
    FALLBACK = "fallback", "Fallback chain (in order, on error or timeout)"
    AB = "ab", "Weighted A/B split"
    CHEAPEST = "cheapest", "Cheapest first"
    FASTEST = "fastest", "Fastest first (measured latency)"


class Route(WorkspaceOwned):
    """A name a flow or agent may use instead of a model: several models and how to choose."""

    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.FALLBACK)
    # How long one target may take to its first token before the next is tried.
    timeout_s = models.FloatField(default=30.0)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="route_slug_per_workspace")
        ]
        permissions = [
            ("use_route", "Can use the route in flows and agents"),
            ("share_route", "Can manage who can access the route"),
        ]

    def __str__(self) -> str:
        return self.name


class RouteTarget(models.Model):
    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="targets")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="route_targets")
    position = models.PositiveIntegerField(default=0)
    weight = models.PositiveIntegerField(default=1)  # for A/B splits

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.route_id}#{self.position}: {self.model_id}"


RouteUserObjectPermission, RouteGroupObjectPermission = grant_models(Route)


class Prompt(WorkspaceOwned):
    """A named prompt template; its text lives in versions."""

    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="prompt_slug_per_workspace")
        ]
        permissions = [
            ("use_prompt", "Can use the prompt in flows and agents"),
            ("approve_prompt", "Can approve a prompt version"),
            ("share_prompt", "Can manage who can access the prompt"),
        ]

    def __str__(self) -> str:
        return self.name


PromptUserObjectPermission, PromptGroupObjectPermission = grant_models(Prompt)


class PromptStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    APPROVED = "approved", "Approved"


class PromptVersion(models.Model):
    """One text of a prompt. Editable while unpublished; immutable once ``published_at`` is set.

    Only a published version can be approved; flows follow the latest approved version unless
    they pin a number.
    """

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    system = models.TextField(blank=True)
    template = models.TextField()
    # The ``{{ name }}`` variables of system + template, detected when the version is saved.
    variables = models.JSONField(default=list, blank=True)
    note = models.CharField(max_length=500, blank=True)
    status = models.CharField(
        max_length=16, choices=PromptStatus.choices, default=PromptStatus.DRAFT
    )
    published_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "number"], name="prompt_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.prompt.slug} v{self.number}"


class Usage(models.Model):
    """One call to a model: who, through what, how many tokens, how long, what it cost.

    ``flow_id`` and ``run_id`` are plain values, not foreign keys: the catalog does not depend on
    the flows app, and usage outlives the flows it counts.
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="usage"
    )
    model = models.ForeignKey(
        Model, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage"
    )
    model_slug = models.CharField(max_length=100)
    adapter = models.CharField(max_length=100, blank=True)
    route_slug = models.CharField(max_length=100, blank=True)
    # Why this model served: "direct", "fallback after …", "a/b weight 3/4", "cheapest"…
    reason = models.CharField(max_length=300, blank=True)
    flow_id = models.BigIntegerField(null=True, blank=True)
    flow_slug = models.CharField(max_length=100, blank=True)
    run_id = models.UUIDField(null=True, blank=True)
    node_id = models.CharField(max_length=64, blank=True)
    # The agent whose step made the call (its slug, given by the agent loop: the catalog does
    # not read the agents app).
    agent_slug = models.CharField(max_length=100, blank=True)
    api_key = models.ForeignKey(
        "workspaces.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    source = models.CharField(max_length=16, blank=True)  # flow, playground, agent
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField(default=0)
    ttft_ms = models.FloatField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    cache_hit = models.BooleanField(default=False)
    ok = models.BooleanField(default=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["workspace", "created_at"], name="usage_ws_time"),
            models.Index(fields=["model", "created_at"], name="usage_model_time"),
            # A run's calls (the runs list's cost and first-token time, a page of runs at once).
            models.Index(fields=["run_id"], name="usage_run"),
        ]

    def __str__(self) -> str:
        return f"{self.model_slug} {self.input_tokens}+{self.output_tokens} tokens"
