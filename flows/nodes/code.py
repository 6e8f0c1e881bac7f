"""The code node: a user's Python function, run in the sandbox (``flows/runtime/sandbox/``).

The code defines ``main``; the node calls it with its declared inputs as keyword arguments, and
``main`` returns a dict holding each declared output. At save the code must parse, define
``main`` and take the declared inputs; at run time each output is checked against its type, and
a missing or mistyped one fails the node, naming it. The code never runs in the web or worker
process: each call is a separate sandbox process, bounded as a whole by ``timeout_s`` and
``memory_mb``; it can start no process or program of its own.
"""

from __future__ import annotations

import ast
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeContext, NodeOutput, NodeType, PortType
from flows.nodes.fields import repeated
from flows.runtime.sandbox import run_python

DEFAULT_CODE = 'def main(a, b):\n    return {"sum": a + b}\n'
LOGS_SHOWN = 4_000  # characters of what the code printed, kept in the trace


class CodeVariable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        title="Name",
        description="Letters, digits and _: the port, and the name in your code.",
    )
    type: PortType = Field(default="any", title="Type")


def _distinct(variables: list[CodeVariable]) -> list[CodeVariable]:
    names = [v.name for v in variables]
    twice = repeated(names)
    if twice:
        raise ValueError(f"names must differ: {', '.join(twice)} is repeated")
    return variables


class CodeConfig(NodeConfig):
    language: Literal["python"] = Field(default="python", title="Language")
    code: str = Field(
        default=DEFAULT_CODE,
        min_length=1,
        max_length=100_000,
        title="Code",
        description="Python defining main(...), which returns a dict with the outputs.",
    )
    inputs: list[CodeVariable] = Field(
        default_factory=lambda: [
            CodeVariable(name="a", type="number"),
            CodeVariable(name="b", type="number"),
        ],
        max_length=50,
        title="Inputs",
        description="The arguments of main, each an input port.",
    )
    outputs: list[CodeVariable] = Field(
        default_factory=lambda: [CodeVariable(name="sum", type="number")],
        min_length=1,
        max_length=50,
        title="Outputs",
        description="The keys of the dict main returns, each an output port of its type.",
    )
    timeout_s: int = Field(
        default=5,
        ge=1,
        le=60,
        title="Timeout (seconds)",
        description="The code is stopped after this long.",
    )
    memory_mb: int = Field(
        default=256,
        ge=32,
        le=2048,
        title="Memory (MB)",
        description="The most memory the code may use.",
    )

    _distinct_inputs = field_validator("inputs")(_distinct)
    _distinct_outputs = field_validator("outputs")(_distinct)

    @field_validator("code")
    @classmethod
    def _parses(cls, code: str) -> str:
        try:
            ast.parse(code, filename="<code>")
        except SyntaxError as exc:
            raise ValueError(f"line {exc.lineno}: {exc.msg}") from None
        return code

    @model_validator(mode="after")
    def _main_takes_inputs(self) -> CodeConfig:
        tree = ast.parse(self.code)
        main = next(
            (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"), None
        )
        if main is None:
            if any(isinstance(n, ast.AsyncFunctionDef) and n.name == "main" for n in tree.body):
                raise ValueError("code: main must be a plain def, not async def")
            raise ValueError("code: define a function main(...) at the top level")
        problems = _signature_problems(main.args, [v.name for v in self.inputs])
        if problems:
            raise ValueError("code: " + "; ".join(problems))
        return self


def _signature_problems(args: ast.arguments, inputs: list[str]) -> list[str]:
    """How main's parameters disagree with the inputs it is called with (by keyword)."""
    by_keyword = [a.arg for a in args.args + args.kwonlyargs]
    problems = [
        f"main cannot take {a.arg!r} by name (it is positional-only)" for a in args.posonlyargs
    ]
    if args.kwarg is None:
        problems += [f"main does not take the input {n!r}" for n in inputs if n not in by_keyword]
    positional_defaults = len(args.defaults)
    required = [a.arg for a in args.args[: len(args.args) - positional_defaults]]
    required += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    problems += [
        f"main needs {name!r}, which is not one of the node's inputs"
        for name in required
        if name not in inputs
    ]
    return problems


def _of_type(kind: PortType, value: Any) -> bool:
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "text":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    return True  # json and any: whatever JSON main returned


_TYPE_NAMES = {str: "a text", bool: "a boolean", int: "a number", float: "a number"}


def checked_outputs(outputs: list[CodeVariable], result: dict[str, Any]) -> dict[str, Any]:
    """The declared outputs from what main returned; ValueError naming a missing or mistyped
    one."""
    missing = [v.name for v in outputs if v.name not in result]
    if missing:
        given = ", ".join(sorted(result)) or "nothing"
        raise ValueError(f"main returned no output {', '.join(missing)} (it returned {given})")
    for variable in outputs:
        value = result[variable.name]
        if not _of_type(variable.type, value):
            given = _TYPE_NAMES.get(type(value), "null" if value is None else "JSON")
            raise ValueError(
                f"output {variable.name!r} should be a {variable.type}, main returned {given}"
            )
    return {v.name: result[v.name] for v in outputs}


@register
class CodeNode(NodeType):
    type = "code"
    label = "Code"
    group = "Tools"
    description = "Runs your Python function on the inputs, in a sandbox."
    Config = CodeConfig

    def input_ports(self, config: CodeConfig) -> dict[str, PortType]:
        return {v.name: v.type for v in config.inputs}

    def output_ports(self, config: CodeConfig) -> dict[str, PortType]:
        return {v.name: v.type for v in config.outputs}

    def queue(self, config: CodeConfig, workspace_id: int) -> str | None:
        return "flows"

    async def arun(
        self, ctx: NodeContext, config: CodeConfig, inputs: dict[str, Any]
    ) -> NodeOutput:
        ran = await run_python(
            code=config.code,
            inputs={v.name: inputs.get(v.name) for v in config.inputs},
            timeout_s=config.timeout_s,
            memory_mb=config.memory_mb,
        )
        details: dict[str, Any] = {
            "sandbox_ms": round(ran.elapsed_ms, 2),
            "sandbox": ran.confinement,  # what bounded it as a whole: a cgroup, or rlimits
        }
        if ran.logs:
            details["logs"] = ran.logs[:LOGS_SHOWN]
        return NodeOutput(outputs=checked_outputs(config.outputs, ran.result), details=details)
