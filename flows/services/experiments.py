"""Writes of online A/B experiments: start one between the published version and another
numbered version, stop it (keeping the published version, or publishing version b). Each change
is audited; who may make it (``publish``) is checked by the caller through ``flows.access``."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from flows.models import Flow, FlowVersion, VersionKind
from flows.selectors import ChatBinding, chat_binding, version_graph
from flows.services.flows import EXPERIMENT_FIELDS, flow_publish
from workspaces.audit import audit_record

MIN_WEIGHT, MAX_WEIGHT = 1, 99


def _experiment(flow: Flow) -> dict:
    version = flow.experiment_version
    return {
        "experiment_version": version.number if version else None,
        "experiment_weight": flow.experiment_weight if version else 0,
    }


def _chat(version: FlowVersion) -> ChatBinding | None:
    try:
        return chat_binding(version)
    except ValidationError:
        return None  # takes no text: it serves the API only


def _input_fields(version: FlowVersion) -> list[tuple[str, str, bool]]:
    graph = version_graph(version.id, version.graph)
    fields = [f for node in graph.of_type("input") for f in node.config.fields]
    return sorted((f.name, f.type, f.required) for f in fields)


def experiment_refusal(*, flow: Flow, version: FlowVersion, weight: int) -> str | None:
    """Why ``version`` cannot serve ``weight`` per cent of ``flow``'s traffic, or None."""
    published = flow.published_version
    if published is None:
        return "Publish a version first: an experiment splits the published traffic."
    if version.flow_id != flow.id or version.kind != VersionKind.VERSION or not version.number:
        return "Only a numbered version of this flow can be tried against the published one."
    if version.id == published.id:
        return f"Version {version.number} is the published one: choose another version for b."
    if not isinstance(weight, int) or isinstance(weight, bool):
        return "The weight is a whole number of per cent."
    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        return f"The weight of version b is {MIN_WEIGHT} to {MAX_WEIGHT} per cent of the traffic."
    # A client sends the same request whichever arm it lands in.
    if _input_fields(version) != _input_fields(published):
        return (
            f"Version {version.number} takes other inputs than the published "
            f"v{published.number}: both arms must take the same inputs."
        )
    chat_b, chat_a = _chat(version), _chat(published)
    if (chat_b and chat_b.input) != (chat_a and chat_a.input):
        return (
            f"Version {version.number} takes a chat message in another input than the "
            f"published v{published.number}: both arms must take the message the same way."
        )
    # The chat page and the widget pick the streamed answer's tokens by node when they reopen a
    # conversation, from the published version's binding.
    if chat_a and chat_b and chat_a.answer_nodes != chat_b.answer_nodes:
        return (
            f"Version {version.number} streams its chat answer from other nodes "
            f"({', '.join(sorted(chat_b.answer_nodes))}) than the published v{published.number} "
            f"({', '.join(sorted(chat_a.answer_nodes))}): rename them to match."
        )
    return None


def flow_experiment_start(*, flow: Flow, version: FlowVersion, weight: int, user=None) -> Flow:
    """Serve ``version`` to ``weight`` per cent of the published traffic (arm b), the published
    version to the rest (arm a), sticky per conversation (``flows.experiments``). One experiment
    at a time: ValidationError while one runs, or when ``experiment_refusal`` has a reason."""
    with transaction.atomic():
        found = Flow.objects.select_for_update(of=("self",)).select_related("published_version")
        locked = found.get(id=flow.id)
        if locked.experiment_version_id is not None:
            raise ValidationError("An experiment is already running: stop it first.")
        refusal = experiment_refusal(flow=locked, version=version, weight=weight)
        if refusal:
            raise ValidationError(refusal)
        before = _experiment(locked)
        locked.experiment_version = version
        locked.experiment_weight = weight
        locked.experiment_started_at = timezone.now()
        locked.save(update_fields=[*EXPERIMENT_FIELDS, "updated_at"])
        audit_record(
            workspace=locked.workspace_id,
            actor=user,
            action="flow.experiment_start",
            target=locked,
            before=before,
            after={**_experiment(locked), "published_version": locked.published_version.number},
        )
    return locked


def flow_experiment_stop(*, flow: Flow, user=None, promote: bool = False) -> Flow:
    """End the running experiment: every request gets the published version again, or with
    ``promote`` version b is published (``flow_publish``, which ends the experiment itself).
    ValidationError when no experiment runs."""
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(id=flow.id)
        version = locked.experiment_version
        if version is None:
            raise ValidationError("No experiment is running on this flow.")
        before = _experiment(locked)
        audit_record(
            workspace=locked.workspace_id,
            actor=user,
            action="flow.experiment_stop",
            target=locked,
            before=before,
            after={"promoted": version.number if promote else None},
        )
        if promote:
            return flow_publish(flow=locked, version=version, user=user)
        locked.experiment_version, locked.experiment_weight = None, 0
        locked.experiment_started_at = None
        locked.save(update_fields=[*EXPERIMENT_FIELDS, "updated_at"])
    return locked
