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
