"""The code node: checked at save (the code parses, defines main, takes the inputs), run in the
sandbox through the real worker, its outputs checked against their types."""

from __future__ import annotations

import asyncio

import pytest
from django.conf import settings as django_settings

from flows.models import NodeResult, RunStatus
from flows.nodes import node_types
from flows.nodes.code import checked_outputs
from flows.runtime.sandbox.cgroup import confinement
from flows.schema import GraphError, check_graph
from tests.flows.nodes.graphs import edge, graph, node, run_graph

CODE = node_types()["code"]
ADD = 'def main(a, b):\n    print("adding")\n    return {"sum": a + b}\n'


def config(**data):
    return CODE.Config.model_validate(data)


def adder_graph(code: str = ADD, outputs: list[dict] | None = None, **settings) -> dict:
    """input (a, b) → code → output (sum)."""
    code_config = {
        "code": code,
        "inputs": [{"name": "a", "type": "number"}, {"name": "b", "type": "number"}],
        "outputs": outputs or [{"name": "sum", "type": "number"}],
        **settings,
    }
    return graph(
        node("add", "code", code_config),
        edges=[
            edge("input_1.a", "add.a"),
            edge("input_1.b", "add.b"),
            edge("add.sum", "output_1.sum"),
        ],
        inputs={"a": "number", "b": "number"},
        outputs={"sum": "number"},
    )


def problems(graph_data: dict) -> list[str]:
    with pytest.raises(GraphError) as caught:
        check_graph(graph_data)
    return caught.value.errors


def test_ports_are_the_declared_inputs_and_outputs():
    assert (CODE.group, CODE.label) == ("Tools", "Code") and CODE.description
    settings = config(
        code="def main(text, limit=3):\n    return {}\n",
        inputs=[{"name": "text", "type": "text"}],
        outputs=[{"name": "words", "type": "json"}, {"name": "count", "type": "number"}],
    )
    assert CODE.input_ports(settings) == {"text": "text"}
    assert CODE.output_ports(settings) == {"words": "json", "count": "number"}
    assert CODE.queue(settings, workspace_id=1) == "flows"
    # The palette's default is a working example.
    default = CODE.Config()
    assert CODE.input_ports(default) == {"a": "number", "b": "number"}
    assert CODE.output_ports(default) == {"sum": "number"}


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("def main(a, b):\n    return {'sum': a +}\n", "code: Value error, line 2: invalid syntax"),
        ("def helper(a, b):\n    return {}\n", "define a function main(...) at the top level"),
        ("async def main(a, b):\n    return {}\n", "main must be a plain def, not async def"),
        ("def main(a):\n    return {}\n", "main does not take the input 'b'"),
        ("def main(a, b, c):\n    return {}\n", "main needs 'c', which is not one of the"),
        ("def main(a, /, b):\n    return {}\n", "main cannot take 'a' by name"),
    ],
)
def test_code_that_cannot_be_called_is_refused_at_save_naming_the_node(code, message):
    errors = problems(adder_graph(code))
    assert len(errors) == 1
    assert errors[0].startswith("node 'add': ") and message in errors[0]


def test_main_may_take_the_inputs_as_keywords_or_have_defaults():
    check_graph(adder_graph("def main(**values):\n    return {'sum': sum(values.values())}\n"))
    check_graph(adder_graph("def main(a, b, scale=1):\n    return {'sum': (a + b) * scale}\n"))


def test_limits_and_names_are_checked_at_save():
    errors = problems(adder_graph(timeout_s=61, memory_mb=16))
    assert any("timeout_s: Input should be less than or equal to 60" in e for e in errors)
    assert any("memory_mb: Input should be greater than or equal to 32" in e for e in errors)
    repeated = [{"name": "sum", "type": "number"}, {"name": "sum", "type": "text"}]
    assert any("sum is repeated" in e for e in problems(adder_graph(outputs=repeated)))
    dotted = adder_graph()
    dotted["nodes"][1]["config"]["inputs"][0]["name"] = "llm.text"
    assert any("inputs.0.name" in e for e in problems(dotted))


def test_each_output_is_checked_against_its_type():
    outputs = config(
        outputs=[
            {"name": "n", "type": "number"},
            {"name": "t", "type": "text"},
            {"name": "ok", "type": "boolean"},
            {"name": "data", "type": "json"},
        ]
    ).outputs
    good = {"n": 2.5, "t": "x", "ok": False, "data": [1], "extra": 1}
    assert checked_outputs(outputs, good) == {"n": 2.5, "t": "x", "ok": False, "data": [1]}
    with pytest.raises(ValueError, match="main returned no output ok, data"):
        checked_outputs(outputs, {"n": 1, "t": "x"})
    with pytest.raises(ValueError, match="output 'n' should be a number, main returned a text"):
        checked_outputs(outputs, {**good, "n": "2"})
    with pytest.raises(ValueError, match="output 'n' should be a number, main returned a boolean"):
        checked_outputs(outputs, {**good, "n": True})
    with pytest.raises(ValueError, match="output 't' should be a text, main returned null"):
        checked_outputs(outputs, {**good, "t": None})


def test_a_mistyped_output_fails_the_node_naming_it():
    settings = config(code="def main(a, b):\n    return {'sum': str(a + b)}\n")
    with pytest.raises(ValueError, match="output 'sum' should be a number, main returned a text"):
        asyncio.run(CODE.arun(None, settings, {"a": 1, "b": 2}))


def test_a_flow_runs_the_code_in_the_sandbox_on_the_worker(worker, workspace, owner):
    run = run_graph(workspace=workspace, owner=owner, graph=adder_graph(), inputs={"a": 2, "b": 5})

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"sum": 7}
    result = NodeResult.objects.get(run=run, node_id="add")
    assert result.queue == "flows"
    assert result.details["logs"] == "adding\n"
    assert result.details["sandbox"] == confinement(django_settings.STUDIO_SANDBOX_CGROUP).name


def test_a_fork_bomb_in_a_flow_starts_no_process(worker, workspace, owner):
    code = (
        "import os\n"
        "def main(a, b):\n"
        "    started = 0\n"
        "    for _ in range(40):\n"
        "        if os.fork() == 0:\n"
        "            os._exit(0)\n"
        "        started += 1\n"
        "    return {'sum': started}\n"
    )
    run = run_graph(
        workspace=workspace, owner=owner, graph=adder_graph(code), inputs={"a": 1, "b": 1}
    )

    assert run.status == RunStatus.FAILED
    assert "line 5, in main" in run.error
    assert "PermissionError: [Errno 1] Operation not permitted" in run.error


def test_an_error_in_the_code_fails_the_run_with_the_users_line(worker, workspace, owner):
    code = "def main(a, b):\n    ratio = a / b\n    return {'sum': ratio}\n"
    run = run_graph(
        workspace=workspace, owner=owner, graph=adder_graph(code), inputs={"a": 1, "b": 0}
    )

    assert run.status == RunStatus.FAILED
    assert "node 'add'" in run.error
    assert "line 2, in main: ratio = a / b" in run.error
    assert "ZeroDivisionError: division by zero" in run.error


def test_code_over_its_time_fails_the_run_with_the_limit(worker, workspace, owner):
    code = "def main(a, b):\n    while True:\n        a += b\n"
    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=adder_graph(code, timeout_s=1),
        inputs={"a": 1, "b": 1},
    )

    assert run.status == RunStatus.FAILED
    assert "node 'add'" in run.error and "ran longer than 1 s and was stopped" in run.error
