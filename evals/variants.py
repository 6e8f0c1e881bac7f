"""Evaluation variants: a flow version's graph with a catalog model or a library prompt swapped
into its LLM nodes, what was swapped (``EvalRun.variant``), and the label pages show for it.

Pure reads and graph building: storing the variant is ``flows.services.flow_variant_create``
(which runs the graph check for the member), starting its evaluation ``evals.services``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from catalog.models import Model, Prompt, PromptVersion
from catalog.selectors.models import model_for_workspace
from flows.models import FlowVersion
from flows.runtime.templating import variables
from studio import access

LLM = "llm"
# A model swap's node choice that means "every LLM node calling this model" (``ALL + slug``).
ALL = "*"


@dataclass(frozen=True)
class Swap:
    """What the member asked for; empty strings and None mean "no swap of that kind"."""

    model_node: str = ""  # a node id, or ALL + the slug of the model to replace
    model: str = ""  # the catalog model swapped in (its slug)
    prompt_node: str = ""
    prompt_version: PromptVersion | None = None

    @property
    def empty(self) -> bool:
        return not (self.model_node or self.model or self.prompt_node or self.prompt_version)


def llm_nodes(graph: dict) -> list[dict]:
    return [n for n in graph.get("nodes", []) if n.get("type") == LLM]


def node_target(node: dict) -> str:
    """What an LLM node calls: its model's slug, or ``route:<slug>``."""
    config = node.get("config") or {}
    return config.get("model") or f"route:{config.get('route', '')}"


def models_usable(user, workspace_id: int) -> QuerySet[Model]:
    """The chat models ``user`` may put into a flow: the workspace's they may use, and the
    shared catalog's (usable by every member)."""
    own = access.scope(user, workspace_id, Model.objects.filter(task="chat"), "use")
    return Model.objects.filter(task="chat").filter(
        Q(id__in=own.values("id")) | Q(workspace__isnull=True)
    )


def prompt_versions_usable(user, workspace_id: int) -> QuerySet[PromptVersion]:
    """The published versions of the library prompts ``user`` may use (a draft may change
    under the evaluation, so no flow runs one)."""
    prompts = access.scope(user, workspace_id, Prompt.objects.all(), "use")
    return (
        PromptVersion.objects.select_related("prompt")
        .filter(prompt__in=prompts, published_at__isnull=False)
        .order_by("prompt__slug", "-number")
    )


def _refuse(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def variant_graph(*, base: FlowVersion, swap: Swap, user, workspace_id: int) -> tuple[dict, dict]:
    """``base``'s graph with ``swap`` applied, and the record of it for ``EvalRun.variant``.
    ValidationError keyed by the form's field when a node is not an LLM node of ``base`` or
    ``user`` may not use the model or the prompt (the same answer for one that does not exist,
    so that no one probes for another workspace's slugs). The graph check is the caller's."""
    graph = copy.deepcopy(base.graph)
    record: dict[str, Any] = {}
    if swap.model_node or swap.model:
        record["model"] = _swap_model(graph, base, swap, user, workspace_id)
    if swap.prompt_node or swap.prompt_version:
        record["prompt"] = _swap_prompt(graph, base, swap, user, workspace_id)
    if not record:
        raise ValidationError("Choose a model or a prompt to swap in.")
    return graph, record


def _swap_model(graph: dict, base: FlowVersion, swap: Swap, user, workspace_id: int) -> dict:
    if not swap.model_node or not swap.model:
        raise _refuse("swap_model", "Choose both the node and the model to swap in.")
    model = model_for_workspace(workspace_id, swap.model)
    if model is None or model.task != "chat" or not access.has_perm(user, model, "use"):
        raise _refuse("swap_model", f"You may not use the model {swap.model!r} here.")
    if swap.model_node.startswith(ALL):
        replaced = swap.model_node[len(ALL) :]
        nodes = [n for n in llm_nodes(graph) if node_target(n) == replaced]
        where = ALL
    else:
        nodes = [n for n in llm_nodes(graph) if n.get("id") == swap.model_node]
        where = swap.model_node
        replaced = node_target(nodes[0]) if nodes else ""
    if not nodes:
        raise _refuse(
            "swap_model_node", f"Version {base.number} has no LLM node {swap.model_node!r}."
        )
    for node in nodes:
        config = node.setdefault("config", {})
        # An adapter belongs to one model's weights: it cannot follow the swap.
        config.update(model=model.slug, route="", adapter="")
    return {"node": where, "from": replaced, "to": model.slug, "nodes": [n["id"] for n in nodes]}


def _swap_prompt(graph: dict, base: FlowVersion, swap: Swap, user, workspace_id: int) -> dict:
    version = swap.prompt_version
    if not swap.prompt_node or version is None:
        raise _refuse("swap_prompt", "Choose both the node and the prompt version to swap in.")
    # The node names the prompt by slug, resolved in the flow's workspace: a version of
    # another workspace's prompt would not be what runs, and is not the member's to use.
    usable = version.prompt.workspace_id == workspace_id and access.has_perm(
        user, version.prompt, "use"
    )
    if version.published_at is None or not usable:
        raise _refuse("swap_prompt", "You may not use that prompt version here.")
    node = next((n for n in llm_nodes(graph) if n.get("id") == swap.prompt_node), None)
    if node is None:
        raise _refuse(
            "swap_prompt_node", f"Version {base.number} has no LLM node {swap.prompt_node!r}."
        )
    config = node.setdefault("config", {})
    before = config.get("library_prompt") or ""
    if before:
        kept = list(config.get("variables") or [])
        before += f" v{config['library_version']}" if config.get("library_version") else ""
    else:
        kept = variables(f"{config.get('system', '')}\n{config.get('prompt', '{{message}}')}")
    # The node keeps the input ports it had (its edges stay valid) and gains the prompt's
    # others: the graph check then names any the graph does not feed.
    config.update(
        library_prompt=version.prompt.slug,
        library_version=version.number,
        variables=kept + [v for v in version.variables if v not in kept],
    )
    return {
        "node": swap.prompt_node,
        "from": before,
        "to": version.prompt.slug,
        "version": version.number,
    }


def variant_label(number: int | None, variant: dict | None) -> str:
    """``v3``, or ``v3 + model qwen-tiny in llm_1 + prompt greet v2 in llm_1``."""
    label = f"v{number}" if number else "draft"
    model = (variant or {}).get("model")
    if model:
        where = f"for {model['from']}" if model["node"] == ALL else f"in {model['node']}"
        label += f" + model {model['to']} {where}"
    prompt = (variant or {}).get("prompt")
    if prompt:
        label += f" + prompt {prompt['to']} v{prompt['version']} in {prompt['node']}"
    return label


def eval_run_label(eval_run: Any) -> str:
    """What an evaluation ran: its version, or the version it swapped into."""
    if eval_run.variant and eval_run.base_version_id:
        return variant_label(eval_run.base_version.number, eval_run.variant)
    return variant_label(eval_run.flow_version.number, None)
