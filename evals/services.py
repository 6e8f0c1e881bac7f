"""Writes of datasets and their cases.

Creating and deleting a dataset, an import and a new version are audited in their own
transaction; a single case added, edited or deleted by hand is not (the audit log would fill
with test data). Callers have checked access (``evals.access``) and validated input
(``evals.schemas``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from agents.models import Agent
from conversations.models import Message
from conversations.services import run_answer, run_citations
from evals.models import Case, CaseOrigin, Dataset, DatasetVersion
from evals.schemas import CaseData
from evals.transfer import case_data
from flows.models import Flow, Run
from workspaces.audit import audit_record
from workspaces.models import Workspace

# A dataset's working set; a version freezes a copy, so this bounds those too.
MAX_CASES = 5_000


def _audit(dataset: Dataset, actor: Any, action: str, **after: Any) -> None:
    audit_record(
        workspace=dataset.workspace_id,
        actor=actor,
        action=f"dataset.{action}",
        target=dataset,
        after={"slug": dataset.slug, **after},
    )


def dataset_create(
    *,
    workspace: Workspace,
    name: str,
    slug: str,
    target: Flow | Agent,
    description: str = "",
    actor: Any = None,
) -> Dataset:
    """A dataset for ``target``; ValidationError when the slug is taken."""
    field = "agent" if isinstance(target, Agent) else "flow"
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                workspace=workspace,
                name=name.strip(),
                slug=slug,
                description=description,
                created_by=actor,
                **{field: target},
            )
            _audit(dataset, actor, "create", target=f"{field}:{target.slug}")
    except IntegrityError:
        raise ValidationError({"slug": f"This workspace already has a dataset {slug!r}."}) from None
    return dataset


def dataset_delete(*, dataset: Dataset, actor: Any = None) -> None:
    with transaction.atomic():
        _audit(dataset, actor, "delete", cases=dataset.cases.count())
        dataset.delete()


def _room_check(dataset: Dataset, adding: int) -> None:
    if dataset.cases.count() + adding > MAX_CASES:
        raise ValidationError(f"A dataset holds at most {MAX_CASES} cases.")


def case_add(
    *, dataset: Dataset, data: CaseData, origin: str = CaseOrigin.MANUAL, origin_run: str = ""
) -> Case:
    _room_check(dataset, 1)
    return Case.objects.create(
        dataset=dataset, origin=origin, origin_run=origin_run, **data.model_dump()
    )


def case_update(*, case: Case, data: CaseData) -> Case:
    for name, value in data.model_dump().items():
        setattr(case, name, value)
    case.save()
    return case


def case_delete(*, case: Case) -> None:
    case.delete()


def cases_import(*, dataset: Dataset, cases: list[CaseData], actor: Any = None) -> int:
    """Add every case or none (one transaction); returns how many were added."""
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=dataset.pk)
        _room_check(dataset, len(cases))
        Case.objects.bulk_create(
            Case(dataset=dataset, origin=CaseOrigin.IMPORT, **c.model_dump()) for c in cases
        )
        _audit(dataset, actor, "import", cases=len(cases))
    return len(cases)


def case_from_run(*, dataset: Dataset, run: Run, actor: Any = None) -> Case:
    """A case from a finished run: its inputs, its answer as the expected output and the
    documents it cited as the expected sources (to be reviewed by hand: a run is not always
    right). A run whose answer was rated is a feedback case; a bad rating keeps the answer out
    of the expected output and puts the rater's comment in the criteria."""
    if not run.is_terminal:
        raise ValidationError("The run has not finished yet.")
    sources = list(dict.fromkeys(c["document"] for c in run_citations(run) if c["document"]))
    rated = Message.objects.filter(run=run, feedback__isnull=False).first()
    bad = rated is not None and rated.feedback < 0
    criteria = f"Rated bad: {rated.feedback_comment}".strip(": ") if bad else ""
    data = CaseData(
        inputs=run.inputs,
        expected_output="" if bad else run_answer(run)[:20_000],
        criteria=criteria[:20_000],
        expected_sources=sources[:50],
    )
    origin = CaseOrigin.FEEDBACK if rated else CaseOrigin.RUN
    return case_add(dataset=dataset, data=data, origin=origin, origin_run=str(run.id))


def dataset_version_create(
    *, dataset: Dataset, note: str = "", actor: Any = None
) -> DatasetVersion:
    """Freeze the working set as the next version. The dataset row is locked so that two
    snapshots at once get consecutive numbers."""
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=dataset.pk)
        cases = list(dataset.cases.order_by("id"))
        if not cases:
            raise ValidationError("Add cases before making a version.")
        last = dataset.versions.aggregate(n=Max("number"))["n"] or 0
        version = DatasetVersion.objects.create(
            dataset=dataset,
            number=last + 1,
            note=note[:500],
            cases=[{"case_id": c.id, **case_data(c).model_dump()} for c in cases],
            created_by=actor,
        )
        _audit(dataset, actor, "version", number=version.number, cases=len(cases))
    return version
