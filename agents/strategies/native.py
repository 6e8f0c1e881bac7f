"""Native function calling: the tools go to the model as OpenAI function definitions, it answers
with ``tool_calls``, and each result goes back as a ``tool`` message."""

from __future__ import annotations

from typing import Any

from agents.state import ToolCall
from agents.strategies.base import AgentStrategy, Decision
from catalog.inference import CallResult


class Native(AgentStrategy):
    name = "native"

    def tools_param(self, definitions: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        return definitions or None

    def decide(self, result: CallResult) -> Decision:
        if not result.tool_calls:
            return Decision(answer=result.text)
        calls = []
        for call in result.tool_calls:
            function = call.get("function") or {}
            calls.append(
                {
                    "id": str(call.get("id") or ""),
                    "name": str(function.get("name") or ""),
                    "arguments": str(function.get("arguments") or ""),
                }
            )
        return Decision(calls=calls, thought=result.text)

    def assistant_message(self, decision: Decision, calls: list[ToolCall]) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": decision.thought or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in calls
            ],
        }

    def result_messages(self, calls: list[ToolCall], contents: list[str]) -> list[dict[str, Any]]:
        return [
            {"role": "tool", "tool_call_id": call.id, "content": content}
            for call, content in zip(calls, contents, strict=True)
        ]
