"""Routes: which model serves a call that names a route, in what order the others are tried.

A route is an ordered list of candidates; the caller tries them in turn, moving on when one fails
or gives no first token within the route's timeout (``ainvoke`` in ``catalog/inference.py``).
The strategy only decides the order:

- ``fallback``: the targets in their order.
- ``ab``: one target drawn by weight, then the others in order as fallbacks. The draw is seeded
  (a run id and node id), so a retried task draws the same target.
- ``cheapest``: by price per million tokens (input + output).
- ``fastest``: by the median latency measured over the last day of successful calls; models not
  measured yet come last, in their order.

Every candidate carries the reason it was chosen, which the usage row and the run trace show.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db.models import Aggregate, F, FloatField, Q
from django.utils import timezone

from catalog.engines import engine_class
from catalog.models import Model, Route, Strategy, Usage

FASTEST_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class Candidate:
    model: Model
    reason: str


def _price(model: Model) -> Decimal:
    return model.price_input + model.price_output


class _Median(Aggregate):
    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def measured_latency(model_ids: list[int]) -> dict[int, float]:
    """Median latency (ms) per model over the last day of successful, uncached calls."""
    rows = (
        Usage.objects.filter(
            model_id__in=model_ids,
            ok=True,
            cache_hit=False,
            created_at__gte=timezone.now() - FASTEST_WINDOW,
        )
        .values("model_id")
        .annotate(median=_Median(F("latency_ms")))
    )
    return {row["model_id"]: float(row["median"]) for row in rows}


def order_candidates(
    strategy: str,
    targets: list[tuple[Model, int]],
    *,
    seed: str,
    latency: dict[int, float] | None = None,
) -> list[Candidate]:
    """The targets (model, weight) in the order to try them, each with the reason."""
    if not targets:
        return []
    if strategy == Strategy.AB:
        total = sum(max(weight, 0) for _, weight in targets)
        if total <= 0:
            return [Candidate(m, "a/b split: no weights set, first target") for m, _ in targets]
        draw = random.Random(seed).uniform(0, total)
        chosen = len(targets) - 1
        for index, (_, weight) in enumerate(targets):
            draw -= max(weight, 0)
            if draw < 0:
                chosen = index
                break
        model, weight = targets[chosen]
        first = Candidate(model, f"a/b split: drawn with weight {weight} of {total}")
        rest = [
            Candidate(m, "a/b split: fallback") for i, (m, _) in enumerate(targets) if i != chosen
        ]
        return [first, *rest]
    if strategy == Strategy.CHEAPEST:
        ranked = sorted(targets, key=lambda t: _price(t[0]))  # stable: ties keep their order
        return [
            Candidate(m, f"cheapest: {_price(m).normalize()} per million tokens") for m, _ in ranked
        ]
    if strategy == Strategy.FASTEST:
        latency = latency or {}
        measured = sorted(
            (t for t in targets if t[0].id in latency), key=lambda t: latency[t[0].id]
        )
        unmeasured = [t for t in targets if t[0].id not in latency]
        return [
            Candidate(m, f"fastest: median latency {latency[m.id]:.0f} ms") for m, _ in measured
        ] + [Candidate(m, "fastest: not measured yet") for m, _ in unmeasured]
    return [
        Candidate(m, "fallback chain: first" if i == 0 else f"fallback chain: #{i + 1}")
        for i, (m, _) in enumerate(targets)
    ]


def route_targets(route: Route) -> list[tuple[Model, int]]:
    return [
        (target.model, target.weight)
        for target in route.targets.select_related("model").filter(~Q(model__status="unavailable"))
    ]


def route_candidates(route: Route, *, seed: str) -> list[Candidate]:
    targets = route_targets(route)
    latency = (
        measured_latency([m.id for m, _ in targets]) if route.strategy == Strategy.FASTEST else None
    )
    return order_candidates(route.strategy, targets, seed=seed, latency=latency)


def route_queue(route: Route) -> str:
    """The queue a call through ``route`` runs on: that of its local (non-portable) models.

    Remote endpoints and echo are portable and run on any queue; ``route_check`` refuses routes
    whose local models live on different queues, since one call runs on one worker.
    """
    for model, _ in route_targets(route):
        cls = engine_class(model.engine)
        if not cls.portable:
            return cls.queue_for(model.settings)
    return "inference"


def route_problems(models: list[Model]) -> list[str]:
    """What makes a list of targets unusable as a route (empty if it is fine)."""
    if not models:
        return ["a route needs at least one model"]
    problems = [
        f"{m.slug} is a {m.task} model, not a chat model" for m in models if m.task != "chat"
    ]
    queues = {
        engine_class(m.engine).queue_for(m.settings)
        for m in models
        if not engine_class(m.engine).portable
    }
    if len(queues) > 1:
        problems.append(
            "the route's local models are served on different worker queues "
            f"({', '.join(sorted(queues))}); one call runs on one worker, so mix remote endpoints "
            "with models of one queue"
        )
    return problems
