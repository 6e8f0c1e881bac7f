"""ReAct, a text protocol for models without native tool calls: the tools are described in the
system message, the model writes ``Thought`` / ``Action`` / ``Action Input`` (one call a step)
or ``Final Answer``, and each result goes back as an ``Observation``.

A reply with neither an action nor a final answer is taken as the answer: small models often
answer plainly when they need no tool.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agents.state import ToolCall
from agents.strategies.base import AgentStrategy, Decision, TokenFilter
from catalog.inference import CallResult

FINAL = "Final Answer:"
_FINAL = re.compile(r"Final\s*Answer\s*:", re.IGNORECASE)
_ACTION = re.compile(r"^\s*Action\s*:\s*(?P<name>.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_INPUT = re.compile(r"^\s*Action\s*Input\s*:\s*(?P<input>.*)", re.IGNORECASE | re.MULTILINE | re.S)
_THOUGHT = re.compile(
    r"^\s*Thought\s*:\s*(?P<text>.*?)\s*(?=^\s*Action\s*:|\Z)", re.I | re.M | re.S
)
# A model that goes on to invent the tool's answer: what it wrote from there is dropped.
_OBSERVATION = re.compile(r"^\s*Observation\s*:", re.IGNORECASE | re.MULTILINE)

PROTOCOL = """You can use these tools:
{tools}

To use a tool, answer exactly in this form and stop:
Thought: why you need the tool
Action: the tool's name, one of {names}
Action Input: the arguments as one JSON object

The result comes back as "Observation: …". When you can answer, write:
Thought: what you found
Final Answer: your answer to the user"""


class _AfterFinal(TokenFilter):
    """Streams only what follows "Final Answer:" (the rest is the model's working)."""

    def __init__(self) -> None:
        super().__init__()
        self._text = ""

    def feed(self, text: str) -> str:
        self._text += text
        found = _FINAL.search(self._text)
        if found is None:
            return ""
        answer = self._text[found.end() :].lstrip()
        new = answer[len(self.shown) :]
        self.shown = answer
        return new


class React(AgentStrategy):
    name = "react"

    def system_text(self, instructions: str, definitions: list[dict[str, Any]]) -> str:
        base = super().system_text(instructions, definitions)
        if not definitions:
            return base
        functions = [d["function"] for d in definitions]
        tools = "\n".join(
            f"- {f['name']}: {f['description']} Arguments (JSON schema): "
            f"{json.dumps(f['parameters'], separators=(',', ':'))}"
            for f in functions
        )
        names = ", ".join(f["name"] for f in functions)
        return f"{base}\n\n{PROTOCOL.format(tools=tools, names=names)}"

    def token_filter(self) -> TokenFilter:
        return _AfterFinal()

    def decide(self, result: CallResult) -> Decision:
        text = result.text
        cut = _OBSERVATION.search(text)
        if cut:
            text = text[: cut.start()]
        final = _FINAL.search(text)
        action = _ACTION.search(text)
        if final and (action is None or final.start() < action.start()):
            return Decision(answer=text[final.end() :].strip())
        if action is None:
            return Decision(answer=text.strip())
        given = _INPUT.search(text, action.end())
        thought = _THOUGHT.search(text)
        return Decision(
            calls=[
                {
                    "id": "",
                    "name": action.group("name").strip().strip("`"),
                    "arguments": given.group("input").strip() if given else "",
                }
            ],
            thought=thought.group("text").strip() if thought else "",
        )

    def assistant_message(self, decision: Decision, calls: list[ToolCall]) -> dict[str, Any]:
        call = calls[0]
        lines = [f"Thought: {decision.thought}"] if decision.thought else []
        lines += [f"Action: {call.name}", f"Action Input: {call.arguments}"]
        return {"role": "assistant", "content": "\n".join(lines)}

    def result_messages(self, calls: list[ToolCall], contents: list[str]) -> list[dict[str, Any]]:
        return [{"role": "user", "content": f"Observation: {content}"} for content in contents]
