"""An LLM node's memory: the conversation's turns its model is shown, and a summary of the turns
that do not fit its token budget.

The summary is written by the node's own target (model or route) through the same call path as
its answer (``model_call.invoke``: metered per node, never streamed to the user), and is kept in
Redis rather than on the run. Why Redis: every message of a conversation starts a new run, and
the dropped turns are the same, or the same plus one more exchange, from one message to the
next; a summary stored on the run would be out of reach of the next run. A key covers the
workspace, the target (the model entry as it is now), and the dropped turns from the first one
(a running hash at each turn), so:

- the same dropped turns are never summarised twice while the key lives (``SUMMARY_TTL_S``);
- when more turns are dropped, the summary of the longest cached beginning is extended with the
  new turns only (a rolling summary): each message costs at most one short call.

A summary that cannot be made (the model fails, Redis is away) leaves the turns dropped, with a
note in the node's details: memory is a help to the answer, not a reason to fail it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from catalog.engines.base import GenerationRequest
from catalog.inference import CallResult
from catalog.models import Model
from flows.history import history_split, history_transcript
from flows.nodes import model_call
from flows.nodes.base import NodeContext
from studio import redis_client

log = logging.getLogger(__name__)

PREFIX = "studio:summary:"
SUMMARY_TOKENS = 200  # the longest summary the model may write
SUMMARY_INPUT_CHARS = 8_000  # the newest part of the turns one call summarises
SUMMARY_TTL_S = 7 * 24 * 3600
SUMMARY_SYSTEM = (
    "You keep a short running summary of a conversation between a user and an assistant. "
    "Keep what later answers may need: who the user is, the facts they gave, what they asked "
    "for and decided, and the assistant's key answers. Write at most 120 words, plain text, "
    "no preamble."
)
NOTE = "Summary of the earlier conversation (those turns are no longer shown):\n"


@dataclass
class Memory:
    """What the model sees of the conversation before the message, and what it cost."""

    turns: list[dict]
    summary: str = ""  # "" when nothing was dropped, or the summary could not be made
    input_tokens: int = 0
    output_tokens: int = 0
    details: dict[str, Any] = field(default_factory=dict)


async def remembered(ctx: NodeContext, config: Any, target: model_call.Target) -> Memory:
    """The turns the node's memory setting lets the model see, and with ``memory_overflow``
    "summarise", a summary of those its token budget drops."""
    history = ctx.history
    if config.memory == "turns":
        return Memory(history_split(history, last_turns=config.memory_turns)[1])
    if config.memory != "tokens":
        return Memory([])
    dropped, kept = history_split(history, max_tokens=config.memory_tokens)
    memory = Memory(kept)
    if not dropped or config.memory_overflow != "summarise":
        return memory
    await summarise_dropped(ctx, target, dropped, memory)
    return memory


# How a summary's model call is made: given the request for each candidate model, the call's
# result. The LLM node's is ``model_call.invoke`` (metered as the node); an agent passes its own
# (metered as the agent's step).
SummaryCall = Callable[[Callable[[Model], GenerationRequest]], Awaitable[CallResult]]


async def summarise_dropped(
    ctx: NodeContext,
    target: model_call.Target,
    dropped: list[dict],
    memory: Memory,
    *,
    call: SummaryCall | None = None,
) -> None:
    """Put the summary of ``dropped`` (the conversation's oldest turns, which ``memory.turns``
    no longer holds) on ``memory``, written by ``target`` (cached, rolling: see the module's
    docstring). Never raises: a summary that cannot be made leaves ``memory.summary`` empty
    and says why in ``memory.details["summary_error"]``."""
    memory.details["dropped_turns"] = len(dropped)
    if call is None:

        def call(request_for: Callable[[Model], GenerationRequest]) -> Awaitable[CallResult]:
            return model_call.invoke(ctx, target, request_for=request_for, stream=False)

    try:
        await _summarise(ctx, target, dropped, memory, call)
    except Exception as exc:  # a summary helps the answer; it never fails it
        log.warning("run %s node %s: no summary: %s", ctx.run_id, ctx.node_id, exc)
        memory.summary = ""
        memory.details["summary_error"] = (
            f"the dropped turns could not be summarised ({exc or type(exc).__name__}): "
            "they were left out"
        )


def with_summary(system: str, summary: str) -> str:
    """The system message with the summary note after the node's own instructions."""
    note = NOTE + summary
    return f"{system}\n\n{note}" if system else note


async def _summarise(
    ctx: NodeContext,
    target: model_call.Target,
    dropped: list[dict],
    memory: Memory,
    call: SummaryCall,
) -> None:
    keys = _keys(ctx.workspace_id, target, dropped)
    client = redis_client.async_client()
    found = await client.mget(keys)
    if found[-1] is not None:
        memory.summary = found[-1].decode()
        memory.details.update(summary="cached", note=memory.summary)
        return
    start, previous = 0, ""
    for index in range(len(found) - 1, -1, -1):
        if found[index] is not None:
            start, previous = index + 1, found[index].decode()
            break
    messages = [
        {"role": "system", "content": SUMMARY_SYSTEM},
        {"role": "user", "content": _summary_prompt(previous, dropped[start:])},
    ]
    result = await call(
        lambda model: model_call.sampled_request(
            model, messages, temperature=0.0, max_tokens=SUMMARY_TOKENS
        )
    )
    summary = result.text.strip()
    if not summary:
        raise ValueError("the model wrote an empty summary")
    await client.set(keys[-1], summary, ex=SUMMARY_TTL_S)
    memory.summary = summary
    memory.input_tokens, memory.output_tokens = result.input_tokens, result.output_tokens
    memory.details.update(summary="extended" if previous else "written", note=summary)
    memory.details["summary_tokens"] = {
        "input": result.input_tokens,
        "output": result.output_tokens,
        "model": result.model.slug,
    }


def _summary_prompt(previous: str, turns: list[dict]) -> str:
    transcript = history_transcript(turns)
    if len(transcript) > SUMMARY_INPUT_CHARS:
        transcript = "(…)\n" + transcript[-SUMMARY_INPUT_CHARS:]
    earlier = f"The summary so far:\n{previous}\n\n" if previous else ""
    return (
        f"{earlier}The conversation to add:\n{transcript}\n\n"
        "Write the updated summary of the whole conversation."
    )


def _keys(workspace_id: int, target: model_call.Target, turns: list[dict]) -> list[str]:
    """One key per beginning of ``turns`` (the first turn, the first two, …, all of them)."""
    if target.route is not None:
        serving = f"route:{target.route.id}"
    else:
        model = target.candidates[0].model
        changed = model.updated_at.isoformat() if model.updated_at else ""
        serving = f"model:{model.id}:{changed}"
    running = hashlib.sha256(f"{serving}\n{SUMMARY_SYSTEM}".encode())
    keys = []
    for turn in turns:
        running.update(json.dumps([turn["role"], turn["content"]]).encode() + b"\n")
        keys.append(f"{PREFIX}{workspace_id}:{running.hexdigest()}")
    return keys
