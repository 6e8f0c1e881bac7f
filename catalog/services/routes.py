"""Writes of routes: a name over several models and a strategy to choose among them."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from catalog.models import Model, Route, Strategy
from catalog.router import route_problems
from workspaces.audit import audit_record
from workspaces.models import Workspace
from workspaces.sharing import creator_grant


@dataclass(frozen=True)
class TargetSpec:
    model: Model
    weight: int = 1


def _snapshot(route: Route) -> dict:
    return {
        "slug": route.slug,
        "name": route.name,
        "strategy": route.strategy,
        "timeout_s": route.timeout_s,
        "targets": [
            {"model": t.model.slug, "weight": t.weight}
            for t in route.targets.select_related("model")
        ],
    }


def _clean(workspace: Workspace, strategy: str, timeout_s: float, targets: list[TargetSpec]):
    errors = list(route_problems([t.model for t in targets]))
    if strategy not in Strategy.values:
        errors.append(f"unknown strategy {strategy!r}")
    if not 0.1 <= timeout_s <= 600:
        errors.append("the timeout must be between 0.1 and 600 seconds")
    for target in targets:
        if target.model.workspace_id not in (None, workspace.id):
            errors.append(f"{target.model.slug} is not in this workspace's catalog")
        if target.weight < 0 or target.weight > 1000:
            errors.append(f"{target.model.slug}: a weight is between 0 and 1000")
    if strategy == Strategy.AB and targets and not any(t.weight for t in targets):
        errors.append("an A/B split needs at least one target with a weight above 0")
    if len({t.model.id for t in targets}) != len(targets):
        errors.append("a model appears twice in the route")
    if errors:
        raise ValidationError(errors)


def _set_targets(route: Route, targets: list[TargetSpec]) -> None:
    route.targets.all().delete()
    route.targets.bulk_create(
        [
            route.targets.model(route=route, model=t.model, position=i, weight=t.weight)
            for i, t in enumerate(targets)
        ]
    )


def route_create(
    *,
    workspace: Workspace,
    slug: str,
    name: str,
    strategy: str,
    targets: list[TargetSpec],
    timeout_s: float = 30.0,
    description: str = "",
    actor=None,
) -> Route:
    _clean(workspace, strategy, timeout_s, targets)
    with transaction.atomic():
        if Route.objects.filter(workspace=workspace, slug=slug).exists():
            raise ValidationError(f"a route named {slug!r} already exists")
        route = Route.objects.create(
            workspace=workspace,
            slug=slug,
            name=name,
            strategy=strategy,
            timeout_s=timeout_s,
            description=description,
        )
        _set_targets(route, targets)
        creator_grant(obj=route, user=actor)
        audit_record(
            workspace=workspace,
            actor=actor,
            action="route.create",
            target=route,
            after=_snapshot(route),
        )
    return route


def route_update(
    *,
    route: Route,
    name: str,
    strategy: str,
    targets: list[TargetSpec],
    timeout_s: float,
    description: str = "",
    actor=None,
) -> Route:
    _clean(route.workspace, strategy, timeout_s, targets)
    with transaction.atomic():
        before = _snapshot(route)
        route.name, route.strategy, route.timeout_s = name, strategy, timeout_s
        route.description = description
        route.save()
        _set_targets(route, targets)
        audit_record(
            workspace=route.workspace_id,
            actor=actor,
            action="route.change",
            target=route,
            before=before,
            after=_snapshot(route),
        )
    return route


def route_delete(*, route: Route, actor=None) -> None:
    with transaction.atomic():
        audit_record(
            workspace=route.workspace_id,
            actor=actor,
            action="route.delete",
            target=route,
            before=_snapshot(route),
        )
        route.delete()
