"""A conversation's earlier turns as a run sees them.

A run started from a conversation (the chat, the conversations API, ``/v1/chat/completions``'s
``messages``) carries the turns before its message in ``Run.history``, checked here. The input
node offers them as a transcript (its ``history`` port), and model nodes with memory put the last
of them before the message (``history_window``); an LLM node may summarise the turns that do not
fit its budget (``history_split``, ``flows/nodes/memory.py``)."""

from __future__ import annotations

from typing import Any, Literal

from django.core.exceptions import ValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

# Past these a conversation is cut from its oldest end by whoever starts the run; a client that
# sends more gets a clear error instead.
MAX_TURNS = 500
MAX_CHARS = 1_000_000
# The key under which inline nodes find the history among the run's inputs (no input field can
# take it: field names are identifiers).
SYSTEM_HISTORY = "sys.history"
# A rough count of tokens, for budgets set in tokens: no tokenizer is at hand in every node.
CHARS_PER_TOKEN = 4


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(max_length=200_000)


_TURNS = TypeAdapter(list[Turn])


def history_clean(turns: Any) -> list[dict]:
    """``turns`` checked: a list of ``{"role": "user" | "assistant", "content": str}``, within
    ``MAX_TURNS`` and ``MAX_CHARS``; ValidationError saying what is wrong otherwise."""
    if turns is None:
        return []
    try:
        checked = _TURNS.validate_python(turns)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValidationError(f"history {where}: {first['msg']}") from None
    if len(checked) > MAX_TURNS:
        raise ValidationError(f"history has {len(checked)} turns; at most {MAX_TURNS}")
    if sum(len(turn.content) for turn in checked) > MAX_CHARS:
        raise ValidationError(f"history is longer than {MAX_CHARS:,} characters")
    return [turn.model_dump() for turn in checked]


def history_transcript(turns: list[dict]) -> str:
    """The turns as text, one paragraph each: ``User: …`` and ``Assistant: …``."""
    names = {"user": "User", "assistant": "Assistant"}
    return "\n\n".join(f"{names[t['role']]}: {t['content']}" for t in turns)


def history_window(
    turns: list[dict], *, last_turns: int | None = None, max_tokens: int | None = None
) -> list[dict]:
    """The most recent turns a model is shown: at most ``last_turns`` exchanges (a user turn and
    the answer to it), then the oldest dropped until they fit ``max_tokens`` (counted roughly).
    Never starts with an answer whose question was dropped."""
    return history_split(turns, last_turns=last_turns, max_tokens=max_tokens)[1]


def history_split(
    turns: list[dict], *, last_turns: int | None = None, max_tokens: int | None = None
) -> tuple[list[dict], list[dict]]:
    """``(dropped, kept)``: the turns ``history_window`` leaves out (the oldest) and those it
    keeps (the most recent); together they are ``turns``."""
    kept = list(turns)
    if last_turns is not None:
        kept = kept[-2 * last_turns :] if last_turns > 0 else []
    if max_tokens is not None:
        budget = max_tokens * CHARS_PER_TOKEN
        while kept and sum(len(t["content"]) for t in kept) > budget:
            kept.pop(0)
    while kept and kept[0]["role"] == "assistant":
        kept.pop(0)
    return list(turns[: len(turns) - len(kept)]), kept
