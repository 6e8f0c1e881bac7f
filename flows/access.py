"""Access to flows and runs, for people and API keys; built on ``studio.access``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404

from flows.models import Flow, FlowKind, Run
from studio.access import check, fetch, has_perm
from workspaces.access import KeyKind, key_check_for_task, key_kind_check
from workspaces.models import ApiKey, FlowAccess, Workspace

# A flow's ``write`` differs from ``run`` in the runs it reaches, not in actions on the flow:
# see ``access_api_run``.
KEY_KIND = KeyKind(
    level_field="flow_access",
    ids_field="flow_ids",
    actions={
        FlowAccess.RUN: frozenset({"view", "run"}),
        FlowAccess.WRITE: frozenset({"view", "run"}),
    },
    noun="flows",
)


def access_flow(user, workspace: Workspace, slug: str, perm: str) -> Flow:
    """A flow of ``workspace`` by slug; ``perm`` is an action: view, run, change, publish,
    delete, share. Never one that serves an agent (``FlowKind.AGENT``): the flow pages do not
    show or edit those."""
    return check(user, fetch(Flow, workspace=workspace, slug=slug, kind=FlowKind.FLOW), perm)


def access_served_flow(user, workspace: Workspace, slug: str, perm: str) -> Flow:
    """``access_flow`` for the pages that serve published flows and agents alike (the chat
    page): a flow of any kind, whose access may be its agent's (``studio.access`` delegates)."""
    return check(user, fetch(Flow, workspace=workspace, slug=slug), perm)


def access_run(user, run_id: Any, perm: str) -> Run:
    """A run, checked against its flow: reading a run needs ``view``, starting one ``run``."""
    run = fetch(Run, "flow", id=run_id)
    check(user, run.flow, perm)
    return run


def access_published_flow(api_key: ApiKey, slug: str) -> Flow:
    """The published flow ``slug`` of the key's workspace if the key may run it; Http404 for a
    flow that is not there, not published or not among the key's flows, PermissionDenied when
    the key has no flow access at all or its creator may no longer run the flow."""
    key_kind_check(api_key, "flows.Flow")
    flow = (
        Flow.objects.select_related("published_version")
        .filter(
            workspace_id=api_key.workspace_id,
            kind=FlowKind.FLOW,
            slug=slug,
            published_version__isnull=False,
        )
        .first()
    )
    if flow is None:
        raise Http404
    try:
        return check(api_key, flow, "run")
    except PermissionDenied:
        raise PermissionDenied("This API key may not run this flow.") from None


def access_api_run(api_key: ApiKey, run_id: Any, perm: str) -> Run:
    """A run the key may reach: one it started, or with ``write`` on its flow one any API key
    started; never a person's runs (chat, studio). ``perm``: ``view`` to read or follow it,
    ``run`` to answer its human-input nodes. A confirmed legacy key keeps what keys had before
    scopes: every run of its workspace. Http404 for a run out of reach."""
    key_kind_check(api_key, "flows.Flow")
    run = fetch(Run, "flow", "flow_version", id=run_id)
    if run.workspace_id != api_key.workspace_id:
        raise Http404
    if not api_key.legacy:
        own = run.api_key_id == api_key.id
        shared = api_key.flow_access == FlowAccess.WRITE and run.api_key_id is not None
        if not (own or shared):
            raise Http404
    try:
        check(api_key, run.flow, perm)
    except PermissionDenied:
        raise PermissionDenied(f"This API key may not {perm} this flow.") from None
    return run


def access_run_for_task(run_id: Any) -> Run:
    """The run a Celery task is to advance, if whoever started it may still run its flow.

    A run started by a user needs that user active with ``run`` on the flow; one started by an
    API key needs the key still usable (``key_refusal``) and, for a top-level run, its scope.
    Raises PermissionDenied with the reason otherwise (the caller fails the run with it),
    Http404 if the run is gone.
    """
    run = fetch(Run, "flow", "created_by", id=run_id)
    access_run_check(run)
    return run


def access_run_check(run: Run) -> None:
    """``access_run_for_task`` for a run already read (its flow with it), such as the one the
    executor has locked: PermissionDenied with the reason if its starter may no longer run it."""
    if run.api_key_id is not None:
        # A sub-flow's run is part of its parent's, which the key was allowed to start.
        key_check_for_task(run.api_key_id, run.flow if run.parent_id is None else None, "run")
        return
    if run.created_by_id is None:
        return  # started by the studio itself (seed, maintenance)
    if not has_perm(run.created_by, run.flow, "run"):
        raise PermissionDenied("the user who started the run may no longer run this flow")
