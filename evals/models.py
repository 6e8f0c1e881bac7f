"""Datasets of test cases for a flow or an agent, their cases, and their frozen versions."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from workspaces.models import WorkspaceOwned


class Dataset(WorkspaceOwned):
    """Test cases for one flow or one agent (exactly one of the two). Not shared on its own:
    its access is its target's (``evals.access``): whoever may view the flow or agent may read
    the dataset, whoever may change it may edit the dataset."""

    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    flow = models.ForeignKey(
        "flows.Flow", null=True, blank=True, on_delete=models.CASCADE, related_name="datasets"
    )
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="datasets"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "slug"], name="dataset_slug_per_workspace"
            ),
            models.CheckConstraint(
                condition=models.Q(flow__isnull=False, agent__isnull=True)
                | models.Q(flow__isnull=True, agent__isnull=False),
                name="dataset_one_target",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def target(self):
        return self.flow if self.flow_id else self.agent


class CaseOrigin(models.TextChoices):
    MANUAL = "manual", "Added by hand"
    IMPORT = "import", "Imported"
    RUN = "run", "From a run"
    FEEDBACK = "feedback", "From feedback"


class Case(models.Model):
    """One test case of a dataset's working set. Editable; a ``DatasetVersion`` freezes a copy."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="cases")
    # The run's inputs, as the flow's input node takes them ({"message": …}).
    inputs = models.JSONField(default=dict)
    expected_output = models.TextField(blank=True)
    # What a judge checks when there is no single right answer.
    criteria = models.TextField(blank=True)
    # Document names or ids that retrieval should find (hit rate, MRR, nDCG).
    expected_sources = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    origin = models.CharField(max_length=16, choices=CaseOrigin.choices, default=CaseOrigin.MANUAL)
    # The run it came from (origin run or feedback); kept as text so deleting runs keeps cases.
    origin_run = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"case {self.pk} of {self.dataset}"


class DatasetVersion(models.Model):
    """A dataset's cases frozen at one moment: evaluation runs score a version, so two runs of
    the same version compare like with like however the working set changed since. Immutable."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    note = models.CharField(max_length=500, blank=True)
    # Each case as ``evals.schemas.CaseData`` dumps it, with its working-set id as ``case_id``.
    cases = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.dataset} v{self.number}"


class EvalStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


EVAL_ENDED = (EvalStatus.DONE, EvalStatus.FAILED, EvalStatus.CANCELLED)


class EvalRun(WorkspaceOwned):
    """A flow version run over every case of a dataset version, each answer scored by the
    chosen evaluators. Worked through by ``workers.tasks.eval_run_tick``
    (``evals.services.eval_run_step``)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="eval_runs")
    dataset_version = models.ForeignKey(
        DatasetVersion, on_delete=models.PROTECT, related_name="eval_runs"
    )
    # What ran: for an agent, its backing flow's published version.
    flow = models.ForeignKey("flows.Flow", on_delete=models.CASCADE, related_name="+")
    flow_version = models.ForeignKey(
        "flows.FlowVersion", on_delete=models.PROTECT, related_name="eval_runs"
    )
    # [{"kind": …, "config": {…}}], each config checked by its evaluator's pydantic model.
    evaluators = models.JSONField(default=list)
    # What was swapped into ``base_version`` to make ``flow_version`` (a ``variant`` version):
    # {"model": {"node": …, "from": …, "to": …}, "prompt": {…}}; empty when nothing was.
    variant = models.JSONField(default=dict, blank=True)
    base_version = models.ForeignKey(
        "flows.FlowVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=16, choices=EvalStatus.choices, default=EvalStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    errored = models.PositiveIntegerField(default=0)
    # Per evaluator, in ``evaluators``' order: {"kind", "mean", "pass_rate", "count"}.
    aggregates = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    # The tick chain's token: a tick runs only if it still holds it, so a redelivered tick is
    # a no-op and never forks a second chain.
    tick = models.PositiveIntegerField(default=0)
    # When the last tick began: a chain quiet for longer than a tick may last lost its tick
    # (a worker killed) and is resumed (``evals.services.eval_runs_resume``).
    ticked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"evaluation {self.pk} of {self.dataset}"

    @property
    def is_ended(self) -> bool:
        return self.status in EVAL_ENDED

    @property
    def percent(self) -> int:
        return round(100 * self.completed / self.total) if self.total else 100


class EvalCaseResult(models.Model):
    """One case of an evaluation run: the flow run it started (so that run is an evaluation's),
    what it answered, and its scores ([{"kind", "value", "passed", "reason"}])."""

    eval_run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    index = models.PositiveIntegerField()
    case_id = models.BigIntegerField(null=True, blank=True)
    run = models.OneToOneField(
        "flows.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="eval_result"
    )
    output = models.TextField(blank=True)
    scores = models.JSONField(default=list, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    error = models.TextField(blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["eval_run", "index"], name="eval_case_once")]

    def __str__(self) -> str:
        return f"case {self.index} of {self.eval_run}"


class EvalComparison(WorkspaceOwned):
    """Two evaluation runs of one flow compared side by side by a member: kept so that the
    flow's publish page can show the last one (``evals.comparison``)."""

    flow = models.ForeignKey("flows.Flow", on_delete=models.CASCADE, related_name="+")
    baseline = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="+")
    candidate = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["flow", "-created_at"], name="eval_comparison_flow_recent")]

    def __str__(self) -> str:
        return f"evaluation {self.baseline_id} against {self.candidate_id}"
