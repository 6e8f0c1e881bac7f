"""Access to datasets, derived from their target: a dataset is not shared on its own.

Whoever may view the dataset's flow or agent may read the dataset and export it; whoever may
change that flow or agent may edit it (cases, imports, versions) and delete it. So a dataset
never reveals more than its target does, and sharing a flow shares its test cases with it.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from agents.models import Agent
from catalog.models import Prompt
from catalog.selectors.models import model_for_workspace
from evals.models import Dataset
from flows.models import Flow, FlowKind
from studio.access import check, fetch, has_perm, scope
from workspaces.models import Workspace

# A dataset's action -> the action it needs on the target.
TARGET_ACTION = {"view": "view", "change": "change"}


def access_dataset(user, workspace: Workspace, slug: str, action: str) -> Dataset:
    """A dataset of ``workspace`` by slug; ``action``: view or change. Http404 when it is not
    there or its target is hidden from ``user``, PermissionDenied when they may see it only."""
    dataset = fetch(Dataset, "flow", "agent", "workspace", workspace=workspace, slug=slug)
    check(user, dataset.target, TARGET_ACTION[action])
    return dataset


def flows_for(user, workspace_id: int, action: str) -> QuerySet[Flow]:
    return scope(user, workspace_id, Flow.objects.filter(kind=FlowKind.FLOW), action)


def agents_for(user, workspace_id: int, action: str) -> QuerySet[Agent]:
    return scope(user, workspace_id, Agent.objects.all(), action)


def datasets_scope(user, workspace_id: int, action: str = "view") -> QuerySet[Dataset]:
    """The workspace's datasets whose target ``user`` may take ``action`` on, in one query."""
    return Dataset.objects.filter(workspace_id=workspace_id).filter(
        Q(flow__in=flows_for(user, workspace_id, action))
        | Q(agent__in=agents_for(user, workspace_id, action))
    )


def evaluator_models_refused(user, workspace_id: int, chosen: list[dict]) -> list[str]:
    """Why ``user`` may not start evaluators that call a catalog model (a judge, an embedder)
    or read a library prompt (a judge's rubric) they may not use; empty when they may. An
    unknown model or prompt is left to the evaluator (it fails its scores with the reason)."""
    refused = []
    for item in chosen:
        slug = (item.get("config") or {}).get("model")
        if not isinstance(slug, str) or not slug:
            continue
        model = model_for_workspace(workspace_id, slug)
        if model is not None and not has_perm(user, model, "use"):
            refused.append(f"{item.get('kind')}: you may not use the model {slug!r}.")
    for item in chosen:
        # A judge's rubric from the prompt library: its text reaches the judge, so the prompt
        # must be one the member may use, as in a flow or an agent.
        slug = (item.get("config") or {}).get("prompt")
        if not isinstance(slug, str) or not slug:
            continue
        prompt = Prompt.objects.filter(workspace_id=workspace_id, slug=slug).first()
        if prompt is not None and not has_perm(user, prompt, "use"):
            refused.append(f"{item.get('kind')}: you may not use the prompt {slug!r}.")
    return refused
