"""Flows, their immutable versions, runs, and each node's stored result within a run."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from workspaces.models import WorkspaceOwned, grant_models


class FlowKind(models.TextChoices):
    FLOW = "flow", "Flow"
    # The graph that serves a published agent (input, the agent, output), made and kept by
    # ``agents`` when the agent is published. Not listed or edited as a flow; its access is the
    # agent's (``flows.access.owner_checks``).
    AGENT = "agent", "Agent"


class Flow(WorkspaceOwned):
    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=FlowKind.choices, default=FlowKind.FLOW)
    # The version that the chat page, the API and the OpenAI-compatible endpoint run.
    published_version = models.ForeignKey(
        "FlowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Serve identical temperature-0 model calls from the workspace's response cache.
    response_cache = models.BooleanField(default=True)
    # Online A/B (``flows.experiments``): a second stored, numbered version that serves
    # ``experiment_weight`` per cent of the published traffic, sticky per conversation. Arm "a" is
    # ``published_version``, arm "b" this one; no experiment while it is null or the weight is 0.
    experiment_version = models.ForeignKey(
        "FlowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    experiment_weight = models.PositiveSmallIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    experiment_started_at = models.DateTimeField(null=True, blank=True)
    # The editor's working copy: autosaved, possibly invalid, never served. Publishing checks
    # it and stores it as the next immutable version.
    draft = models.JSONField(null=True, blank=True)
    draft_saved_at = models.DateTimeField(null=True, blank=True)
    draft_saved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="flow_slug_per_workspace")
        ]
        permissions = [
            ("run_flow", "Can run the flow and read its runs"),
            ("publish_flow", "Can publish a version of the flow"),
            ("share_flow", "Can manage who can access the flow"),
        ]

    def __str__(self) -> str:
        return self.name


FlowUserObjectPermission, FlowGroupObjectPermission = grant_models(Flow)


class VersionKind(models.TextChoices):
    VERSION = "version", "Version"
    # A snapshot of the draft that the editor ran with test inputs: unnumbered, never served.
    DRAFT = "draft", "Draft snapshot"
    # A stored version with a model or prompt swapped in for an evaluation
    # (``evals.variants``): unnumbered, never served, never published.
    VARIANT = "variant", "Evaluation variant"


class FlowVersion(models.Model):
    """A saved graph. Immutable: editing a flow saves a new version."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=16, choices=VersionKind.choices, default=VersionKind.VERSION)
    note = models.CharField(max_length=500, blank=True)
    graph = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "number"], name="flow_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.flow} v{self.number}" if self.number else f"{self.flow} (draft)"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    # Paused until a person answers a human-input node.
    WAITING = "waiting", "Waiting for input"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


TERMINAL = (RunStatus.SUCCEEDED, RunStatus.FAILED)


class RunSource(models.TextChoices):
    CHAT = "chat", "Chat page"
    API = "api", "REST API"
    OPENAI = "openai", "OpenAI-compatible API"
    STUDIO = "studio", "Studio"
    SUBFLOW = "subflow", "Sub-flow of another run"
    WIDGET = "widget", "Embed widget"
    MCP = "mcp", "MCP client"


class Run(WorkspaceOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs")
    flow_version = models.ForeignKey(FlowVersion, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    source = models.CharField(max_length=16, choices=RunSource.choices, default=RunSource.STUDIO)
    # The A/B arm that served a published run ("a": the published version, "b": the flow's
    # experiment version); blank outside an experiment.
    arm = models.CharField(max_length=1, blank=True)
    inputs = models.JSONField(default=dict)
    # The conversation's turns before this run's message (``flows/history.py``).
    history = models.JSONField(default=list, blank=True)
    # The conversation's variables: those it started with, then as its nodes wrote them
    # (``flows/variables.py``); copied back to the conversation when its answer settles.
    variables = models.JSONField(default=dict, blank=True)
    # A client's ``Idempotency-Key``: one run per key and API key, however often it is sent.
    idempotency_key = models.CharField(max_length=255, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # {"input_tokens": …, "output_tokens": …, "total_tokens": …}
    usage = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    api_key = models.ForeignKey(
        "workspaces.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    # A run started by a sub-flow node: its result completes that node of the parent run.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    parent_node = models.CharField(max_length=200, blank=True)
    depth = models.PositiveSmallIntegerField(default=0)
    # The run at the top of a sub-flow run's tree (None on the top run itself): its ``RunTree``
    # counts what the whole tree used.
    root = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField()
    # When its executor task was last sent after its first one: a pass that left the rest to a
    # fresh task, a person's answer, or a lost task sent again (see ``NodeResult``); a run
    # waiting on nothing but that task past ``STUDIO_DISPATCH_STALE_S`` has lost it.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    requeues = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "deadline_at"], name="run_status_deadline"),
            # The runs list's keyset orders (``observe.selectors``): newest first, id breaking
            # ties, across the workspace and per flow. Its full-text index over the inputs and
            # outputs is an expression index made by migration 0011 (raw SQL: the query must
            # repeat its expression exactly, ``observe.selectors.SEARCH_DOCUMENT``).
            models.Index(fields=["workspace", "-created_at", "-id"], name="run_workspace_keyset"),
            models.Index(fields=["flow", "-created_at", "-id"], name="run_flow_keyset"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="run_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.id} of {self.flow}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


class RunTree(models.Model):
    """What a run with sub-flow nodes and every sub-flow run under it used, together: sub-flows
    inside iterations multiply, so the limits of one run do not bound the tree.

    A row of its own, not columns of the top run: a pass of a run in the tree counts here while
    it holds its own run's lock, and ``run_fail`` locks a run and then its children, so counting
    on the top run's row could deadlock with it. Nothing that holds this row waits for a run."""

    root = models.OneToOneField(Run, primary_key=True, on_delete=models.CASCADE, related_name="+")
    runs = models.PositiveIntegerField(default=1)
    nodes = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"tree of run {self.root_id}"


class NodeStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # dispatched to a worker queue, not yet claimed
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"  # for a person (human input) or a child run (sub-flow)
    SUCCEEDED = "succeeded", "Succeeded"
    # Failed, and handled by the node's policy (a default value or its error branch).
    HANDLED = "handled", "Failed, handled"
    SKIPPED = "skipped", "Skipped"  # on a branch that was not taken
    FAILED = "failed", "Failed"


# A node whose result downstream nodes may read.
SETTLED = (NodeStatus.SUCCEEDED, NodeStatus.HANDLED, NodeStatus.SKIPPED)


class NodeResult(models.Model):
    """One node's execution within a run, stored once: the executor's state.

    Inside an iteration or a loop, a node runs once per item or round: ``node_id`` is then the
    instance's key, ``llm_1[3]`` (and ``llm_1[3][0]`` when containers nest).
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="node_results")
    node_id = models.CharField(max_length=200)
    node_type = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=NodeStatus.choices)
    queue = models.CharField(max_length=100, blank=True)
    inputs = models.JSONField(default=dict)
    outputs = models.JSONField(default=dict, blank=True)
    # Output ports whose branch was not taken.
    skip = models.JSONField(default=list, blank=True)
    # Attempts started (retries with backoff, and requeues after a worker was lost).
    attempts = models.PositiveSmallIntegerField(default=0)
    # How many containers it is inside (0: the top level), so each pass of the executor reads
    # the top level and the open instances only, not every finished item again.
    depth = models.PositiveSmallIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When its task was last sent again (or is due, after a retry's backoff); null: when it was
    # created. A pending node whose task is gone from the broker past it is sent again, at most
    # ``STUDIO_NODE_REQUEUES`` times (``requeues``) while the task is lost outright.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    requeues = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "node_id"], name="node_result_once")]
        indexes = [models.Index(fields=["run", "depth"], name="node_result_depth")]

    def __str__(self) -> str:
        return f"{self.node_id} in {self.run_id}"
