"""The code tool: Python run in the studio's sandbox (``flows/runtime/sandbox/``), never in the
web or worker process.

Either the agent's author fixes the code and the model passes only the inputs, or the author
leaves it open and the model writes the code. Either way the code defines ``main``, which is
called with the inputs as keyword arguments and returns a dict; that dict and what the code
printed go back to the model, cut to a size, as untrusted data. The author bounds each call's
time and memory, as for the flows' code node.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from pydantic import Field, field_validator, model_validator

from agents.tools import register
from agents.tools.base import Tool, ToolConfig, ToolContext, ToolParams, ToolResult, untrusted
from flows.runtime.sandbox import SandboxError, SandboxUnavailable, run_python

MAX_CODE_CHARS = 20_000
MAX_INPUTS_CHARS = 50_000
RESULT_SHOWN = 8_000  # characters of main's result read back to the model
LOGS_SHOWN = 4_000  # characters of what the code printed


def _parses(code: str) -> str:
    try:
        ast.parse(code, filename="<code>")
    except SyntaxError as exc:
        raise ValueError(f"line {exc.lineno}: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError("the code is nested too deeply to read") from None
    return code


class CodeToolConfig(ToolConfig):
    code: str = Field(
        default="",
        max_length=MAX_CODE_CHARS,
        description="Python defining main(...); empty: the model writes the code",
    )
    timeout_s: int = Field(default=5, ge=1, le=60)
    memory_mb: int = Field(default=256, ge=32, le=2048)

    @field_validator("code")
    @classmethod
    def _code_defines_main(cls, code: str) -> str:
        if code and not any(
            isinstance(n, ast.FunctionDef) and n.name == "main"
            for n in ast.parse(_parses(code)).body
        ):
            raise ValueError("define a function main(...) at the top level")
        return code


class CodeToolParams(ToolParams):
    code: str | None = Field(
        default=None,
        max_length=MAX_CODE_CHARS,
        description="Python source that defines main(...), which takes the inputs as keyword "
        "arguments and returns a dict; print() output is returned too. Leave it out when the "
        "tool has fixed code.",
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict, max_length=50, description="The keyword arguments passed to main"
    )

    @model_validator(mode="after")
    def _bounded_inputs(self) -> CodeToolParams:
        if any(not name.isidentifier() for name in self.inputs):
            raise ValueError("inputs: each name must be a Python identifier")
        if len(json.dumps(self.inputs, ensure_ascii=False)) > MAX_INPUTS_CHARS:
            raise ValueError(f"inputs: at most {MAX_INPUTS_CHARS:,} characters of JSON")
        return self


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[… {len(text) - limit:,} more]"


@register
class Code(Tool):
    name = "code"
    description = (
        "Run Python in a sandbox (no network, no files kept): main(**inputs) is called and "
        "its returned dict and printed output come back."
    )
    Params = CodeToolParams
    Config = CodeToolConfig

    def definition(self, config: CodeToolConfig) -> dict[str, Any]:
        definition = super().definition(config)
        if config.code:
            # Fixed code: the model passes only the inputs, and is not offered a code field.
            parameters = definition["function"]["parameters"]
            parameters["properties"] = {"inputs": parameters["properties"]["inputs"]}
        return definition

    def _source(self, config: CodeToolConfig, params: CodeToolParams) -> str | ToolResult:
        if config.code:
            if params.code:
                return ToolResult(content="Not run: this tool's code is fixed; pass only inputs.")
            return config.code
        if not params.code:
            return ToolResult(content="Not run: give the Python code that defines main(...).")
        try:
            return _parses(params.code)
        except ValueError as exc:
            return ToolResult(content=f"Not run: the code does not parse ({exc}).")

    async def arun(
        self, ctx: ToolContext, config: CodeToolConfig, params: CodeToolParams
    ) -> ToolResult:
        source = self._source(config, params)
        if isinstance(source, ToolResult):
            return source
        try:
            ran = await run_python(
                code=source,
                inputs=params.inputs,
                timeout_s=config.timeout_s,
                memory_mb=config.memory_mb,
            )
        except SandboxUnavailable as exc:
            return ToolResult(content=f"Code cannot run here: {exc}.", details={"error": str(exc)})
        except SandboxError as exc:
            # The error can quote the inputs, which may come from anywhere.
            return ToolResult(
                content="The code failed:\n" + untrusted(str(exc), source="code"),
                details={"error": str(exc)},
            )
        result = _cut(json.dumps(ran.result, ensure_ascii=False), RESULT_SHOWN)
        text = f"result: {result}"
        if ran.logs:
            text += f"\nprinted:\n{_cut(ran.logs, LOGS_SHOWN)}"
        return ToolResult(
            content=untrusted(text, source="code"),
            details={
                "sandbox_ms": round(ran.elapsed_ms, 2),
                "sandbox": ran.confinement,
                "logs": ran.logs[:LOGS_SHOWN],
            },
        )
