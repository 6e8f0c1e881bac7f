"""The flow engine's own overhead: what the executor costs per node and per run, with a model
that answers instantly (the echo engine), so only the studio is measured.

Three graphs, each published and run through the real path (run row → Celery ``advance_run`` →
executor → ``execute_node`` on the inference queue for LLM nodes → events):

- ``chain``: input → LLM → output (3 nodes);
- ``branches``: 50 nodes: an if/else routes to one of three 15-node chains of LLM nodes and
  variable assigners (the other two are skipped), an aggregator joins them;
- ``iteration``: an iteration over 1,000 items whose body is a variable assigner (inline), and
  the same with an LLM node in the body (dispatched per item, 8 items in flight).

For each, ``--runs`` runs one after another; the run's own timestamps (created → finished, both
written by the studio) give its time, from which the time inside the model (``model_ms`` of
each LLM node) is taken away: the rest is the studio's overhead, printed per run and per
executed node (skipped nodes are counted apart).

It shares ``bench/spine.py``'s isolated stack under ``var/bench/`` (embedded PostgreSQL and
Redis, a web server and an all-in-one worker with 8 threads)::

    .venv/bin/python bench/flows.py [--runs 20] [--items 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import spine  # noqa: E402  (sets the bench's var dir before Django loads)

from bench.figures import percentile  # noqa: E402

WORKSPACE = "bench-flows"
MODEL = "bench-flows-echo"
BRANCH_LENGTH = 15


def node(id_, type_, config, parent=None):
    spec = {"id": id_, "type": type_, "config": config}
    return spec | ({"parent": parent} if parent else {})


def edge(source, source_port, target, target_port):
    return {
        "source": source,
        "source_port": source_port,
        "target": target,
        "target_port": target_port,
    }


def llm(id_, prompt, parent=None):
    return node(id_, "llm", {"model": MODEL, "prompt": prompt, "max_tokens": 16}, parent)


def assign(id_, value, parent=None):
    config = {"variables": [{"name": "value", "type": "text", "value": value}]}
    return node(id_, "variable_assigner", config, parent)


def text_input(name="message", type_="text"):
    return node("input_1", "input", {"fields": [{"name": name, "type": type_}]})


def output(name="text", type_="text"):
    return node("output_1", "output", {"fields": [{"name": name, "type": type_}]})


def chain_graph() -> dict:
    return {
        "nodes": [text_input(), llm("llm_1", "{{input_1.message}}"), output()],
        "edges": [edge("llm_1", "text", "output_1", "text")],
    }


def branches_graph() -> dict:
    """50 nodes: input, if/else, three chains of 15, an aggregator, an output, a template."""
    cases = [
        {
            "id": name,
            "conditions": [{"variable": "input_1.message", "operator": "contains", "value": name}],
        }
        for name in ("alpha", "beta")
    ]
    nodes = [text_input(), node("route", "if_else", {"cases": cases})]
    edges = []
    ends = []
    for branch in ("alpha", "beta", "else"):
        previous = "input_1.message"
        for step in range(BRANCH_LENGTH):
            id_ = f"{branch}_{step}"
            make = llm if step % 3 == 0 else assign
            nodes.append(make(id_, "{{" + previous + "}}"))
            previous = f"{id_}.{'text' if make is llm else 'value'}"
            if step == 0:
                edges.append(edge("route", branch, id_, "_trigger"))
        ends.append(previous)
    nodes.append(node("merge", "variable_aggregator", {"variables": ends, "type": "text"}))
    nodes.append(assign("final", "{{merge.output}}"))
    nodes.append(output())
    edges.append(edge("final", "value", "output_1", "text"))
    assert len(nodes) == 50, len(nodes)
    return {"nodes": nodes, "edges": edges}


def iteration_graph(body: str, parallelism: int) -> dict:
    make = llm if body == "llm" else assign
    port = "text" if body == "llm" else "value"
    return {
        "nodes": [
            text_input("items", "json"),
            node("each", "iteration", {"result": f"body.{port}", "parallelism": parallelism}),
            make("body", "item {{each.index}}: {{each.item}}", parent="each"),
            output("results", "json"),
        ],
        "edges": [
            edge("input_1", "items", "each", "items"),
            edge("each", "results", "output_1", "results"),
        ],
    }


@dataclass
class Case:
    name: str
    graph: dict
    inputs: dict


@dataclass
class Sample:
    total_ms: float
    model_ms: float
    executed: int
    skipped: int

    @property
    def overhead_ms(self) -> float:
        return self.total_ms - self.model_ms


def prepare(cases: list[Case]) -> dict:
    """The workspace, the echo model and one published flow per case."""
    import django

    django.setup()
    from django.db import transaction

    from catalog.models import Model
    from catalog.services import model_create
    from flows.models import Flow
    from flows.services import flow_create, flow_publish, flow_settings_change, flow_version_save
    from workspaces.models import Workspace
    from workspaces.services import workspace_create

    flows = {}
    with transaction.atomic():
        workspace = Workspace.objects.filter(slug=WORKSPACE).first() or workspace_create(
            slug=WORKSPACE, name="Flow benchmark"
        )
        if not Model.objects.filter(workspace=workspace, slug=MODEL).exists():
            model_create(slug=MODEL, name="Echo", engine="echo", settings={}, workspace=workspace)
        for case in cases:
            flow = Flow.objects.filter(workspace=workspace, slug=case.name).first()
            if flow is None:
                flow = flow_create(
                    workspace=workspace, slug=case.name, name=case.name, graph=case.graph
                )
                flow_publish(flow=flow)
            elif flow.published_version.graph != case.graph:
                flow_publish(flow=flow, version=flow_version_save(flow=flow, graph=case.graph))
            # Repeated prompts: the response cache would measure Redis, not the engine.
            flows[case.name] = flow_settings_change(flow=flow, response_cache=False)
    return flows


def run_once(flow, inputs: dict, timeout: float = 300) -> Sample:
    from flows.models import TERMINAL, NodeStatus, Run, RunSource
    from flows.services import run_create

    run = run_create(
        flow=flow, version=flow.published_version, inputs=inputs, source=RunSource.STUDIO
    )
    deadline = time.monotonic() + timeout
    while True:
        run.refresh_from_db(fields=["status", "finished_at", "error"])
        if run.status in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run.id} of {flow.slug} did not finish in {timeout} s")
        time.sleep(0.01)
    run = Run.objects.get(id=run.id)
    if run.status != "succeeded":
        raise RuntimeError(f"run {run.id} of {flow.slug} failed: {run.error}")
    results = list(run.node_results.all())
    model_ms = sum(r.details.get("model_ms", 0) for r in results if r.node_type == "llm")
    return Sample(
        total_ms=(run.finished_at - run.created_at).total_seconds() * 1000,
        model_ms=model_ms,
        executed=sum(r.status != NodeStatus.SKIPPED for r in results),
        skipped=sum(r.status == NodeStatus.SKIPPED for r in results),
    )


def report(name: str, samples: list[Sample]) -> None:
    overhead = [s.overhead_ms for s in samples]
    per_node = [s.overhead_ms / s.executed for s in samples]
    first = samples[0]
    model = statistics.median(s.model_ms for s in samples)
    print(
        f"{name:<22} runs {len(samples):>3}  nodes {first.executed:>5} run"
        f" (+{first.skipped} skipped)  run p50 {percentile([s.total_ms for s in samples], 50):9.1f}"
        f" ms  overhead p50 {percentile(overhead, 50):9.1f} ms  p95"
        f" {percentile(overhead, 95):9.1f} ms  per node p50"
        f" {statistics.median(per_node):6.2f} ms  model {model:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per small graph")
    parser.add_argument("--iteration-runs", type=int, default=3, help="runs per iteration")
    parser.add_argument("--items", type=int, default=1000, help="items of the iterations")
    args = parser.parse_args()
    items = [f"item {i}" for i in range(args.items)]
    cases = [
        Case("chain", chain_graph(), {"message": "one two three four"}),
        Case("branches", branches_graph(), {"message": "beta one two"}),
        Case("iteration-inline", iteration_graph("assign", 1), {"items": items}),
        Case("iteration-llm", iteration_graph("llm", 8), {"items": items}),
    ]
    stack = spine.Stack()
    try:
        spine.start_servers(stack)
        spine.migrate()
        flows = prepare(cases)
        spine.start_processes(stack)
        run_once(flows["chain"], cases[0].inputs)  # warm up: the worker loads the engine
        print(f"flow engine overhead (echo model; {args.items} items per iteration)")
        for case in cases:
            runs = args.iteration_runs if case.name.startswith("iteration") else args.runs
            samples = []
            for _ in range(runs):
                spine.check_alive(stack)
                samples.append(run_once(flows[case.name], case.inputs))
            report(case.name, samples)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
