"""The sub-flow node: runs the published version of another flow of the workspace as a child
run, and gives back the outputs it names.

The child run is an ordinary run (its own trace, its own events) with ``parent`` set; when it
ends it wakes the parent, whose executor reads its result here. Sub-flows nest at most
``MAX_DEPTH`` deep, which also stops a flow that calls itself; and since a sub-flow inside an
iteration multiplies, the top run and every run under it share one budget of runs and node
executions (``run_tree_count``, ``STUDIO_RUN_TREE_MAX_*``).

The child starts from the parent's conversation variables (it reads them as
``{{conversation.<name>}}``); when it succeeds, the ones it wrote are merged into the parent
run's (and so reach the conversation), checked against the limits like an assigner's write. A
failed child changes none.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from pydantic import Field

from flows.models import Run, RunSource, RunStatus
from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeOutput, NodeType, PortType
from flows.nodes.fields import FieldSpec
from flows.runtime.templating import VARIABLE, render, variables
from flows.schema import check_graph
from flows.selectors import published_flow, run_by_id
from flows.services.runs import run_create
from flows.variables import WRITTEN, variables_merge, variables_written
from studio import access

MAX_DEPTH = 5


class SubflowConfig(NodeConfig):
    flow: str = Field(max_length=100, title="Flow", description="A published flow (its slug).")
    inputs: dict[str, str] = Field(
        default_factory=lambda: {"message": "{{message}}"},
        max_length=50,
        title="Inputs",
        description="The sub-flow's input fields, each filled from text or {{variables}}.",
    )
    outputs: list[FieldSpec] = Field(
        default_factory=lambda: [FieldSpec(name="text", label="Answer")],
        min_length=1,
        max_length=50,
        title="Outputs",
        description="The sub-flow's outputs this node gives back.",
    )


@register
class SubflowNode(NodeType):
    type = "subflow"
    label = "Sub-flow"
    group = "Tools"
    description = "Runs another published flow and gives back its outputs."
    Config = SubflowConfig
    waits = True

    def input_ports(self, config: SubflowConfig) -> dict[str, PortType]:
        names = [n for text in config.inputs.values() for n in variables(text)]
        return dict.fromkeys(names, "any")

    def output_ports(self, config: SubflowConfig) -> dict[str, PortType]:
        return {f.name: f.type for f in config.outputs}

    def check(self, config: SubflowConfig, workspace: Any, user: Any = None) -> list[str]:
        flow = published_flow(workspace.id, config.flow)
        # One answer for a missing flow and one the user may not run: no probing for slugs.
        if flow is None or (user is not None and not access.has_perm(user, flow, "run")):
            return [f"flow {config.flow!r} is not a published flow of this workspace"]
        graph = check_graph(flow.published_version.graph)
        fields = {f.name: f for n in graph.of_type("input") for f in n.config.fields}
        outputs = {f.name for n in graph.of_type("output") for f in n.config.fields}
        errors = [
            f"flow {config.flow!r} has no input {n!r}" for n in config.inputs if n not in fields
        ]
        errors += [
            f"flow {config.flow!r} needs the input {name!r}"
            for name, field in fields.items()
            if field.required and name not in config.inputs
        ]
        errors += [
            f"flow {config.flow!r} has no output {f.name!r}"
            for f in config.outputs
            if f.name not in outputs
        ]
        return errors

    def wait_begin(self, config: SubflowConfig, inputs: dict[str, Any], run: Run, key: str):
        if run.depth + 1 > MAX_DEPTH:
            raise ValueError(f"sub-flows nest deeper than {MAX_DEPTH} runs")
        flow = published_flow(run.workspace_id, config.flow)
        if flow is None:
            raise ValueError(f"flow {config.flow!r} is not published (any more)")
        values = {}
        for name, text in config.inputs.items():
            whole = VARIABLE.fullmatch(text.strip())
            values[name] = inputs.get(whole.group(1)) if whole else render(text, inputs)
        try:
            child = run_create(
                flow=flow,
                version=flow.published_version,
                inputs=values,
                source=RunSource.SUBFLOW,
                user=run.created_by,
                api_key=run.api_key,
                parent=run,
                parent_node=key,
                variables=run.variables,
            )
        except ValidationError as exc:
            raise ValueError(f"flow {config.flow!r}: {'; '.join(exc.messages)}") from None
        return {"child_run": str(child.id), "flow": flow.slug}

    def wait_resolve(self, config: SubflowConfig, details: dict) -> NodeOutput | str | None:
        child = run_by_id(details["child_run"])
        if child is None:
            return "the sub-flow's run was deleted"
        if child.status == RunStatus.FAILED:
            return f"the sub-flow {details['flow']!r} failed: {child.error}"
        if child.status != RunStatus.SUCCEEDED:
            return None
        output = NodeOutput(
            outputs={f.name: child.outputs.get(f.name) for f in config.outputs},
            input_tokens=child.usage.get("input_tokens", 0),
            output_tokens=child.usage.get("output_tokens", 0),
        )
        written = variables_written(child)
        if not written:
            return output
        # The parent's variables as they are now: its other branches may have written since
        # the child started (the executor keeps the stored row current).
        current = Run.objects.filter(id=child.parent_id).values_list("variables", flat=True)
        try:
            output.variables = variables_merge(current.first() or {}, written)
        except ValueError as exc:
            return f"the sub-flow {details['flow']!r}: {exc}"
        output.details = {WRITTEN: sorted(written)}
        return output
