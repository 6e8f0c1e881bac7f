"""Automatic fact extraction (``Memory.extract_facts``): after an agent's answer, one more call to
its model asks for the lasting facts about the end user in the exchange, and stores the new
ones in long-term memory (``source=extraction``).

The model must answer a JSON list of short strings; anything else is ignored (the exchange
simply yields no fact). Each fact is stored through ``fact_remember``, so a near-duplicate of a
stored fact (by embedding similarity) is skipped and the per-subject cap holds. The call is
metered as the agent's (``node_id`` "extract"). Extraction helps later conversations; it never
fails the run nor changes its answer: a failure is logged and reported in the trace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async

from agents.loop import AgentEnv
from agents.memory import FactRefused, aembedded, agent_of, fact_remember
from agents.models import FactSource
from agents.runtime import agent_call
from flows.nodes import model_call

log = logging.getLogger(__name__)

MAX_EXTRACTED = 5  # facts kept from one exchange
MAX_EXTRACTED_CHARS = 300  # a longer "fact" is a paraphrase of the exchange, not a fact
EXCHANGE_CHARS = 6_000  # of the user's message and of the answer, each, shown to the model
EXTRACT_TOKENS = 300
EXTRACT_SYSTEM = (
    "You pick out lasting facts about the user from one exchange between the user and an "
    "assistant: who they are, what they have, like, use, plan or decided, that will still be "
    "true and useful in a later conversation. Only what the user said about themselves; not "
    "the assistant's statements, not the question of the moment. Write each fact as one short "
    'sentence about "the user". Answer with a JSON list of strings only (at most '
    f"{MAX_EXTRACTED}), or [] when there is none."
)


@dataclass
class Extraction:
    """What one extraction stored, for the trace."""

    saved: list[str] = field(default_factory=list)
    duplicates: int = 0
    error: str = ""

    def details(self) -> dict[str, Any]:
        found: dict[str, Any] = {"extracted": self.saved, "duplicates": self.duplicates}
        if self.error:
            found["extraction_error"] = self.error
        return found


def extracted_facts(text: str) -> list[str]:
    """The facts of the model's answer: a JSON list of strings (a Markdown fence around it is
    tolerated); ValueError for anything else. Blank and over-long items are left out, repeats
    kept once, at most ``MAX_EXTRACTED``."""
    value = model_call.json_answer(text)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("the model's answer is not a JSON list of strings")
    facts: list[str] = []
    for item in value:
        fact = " ".join(item.split())
        if fact and len(fact) <= MAX_EXTRACTED_CHARS and fact not in facts:
            facts.append(fact)
    return facts[:MAX_EXTRACTED]


def _exchange(message: str, answer: str) -> str:
    return (
        f"User: {message[-EXCHANGE_CHARS:]}\n\nAssistant: {answer[:EXCHANGE_CHARS]}\n\n"
        "The lasting facts about the user, as a JSON list of strings:"
    )


async def facts_extract(*, env: AgentEnv, message: str, answer: str) -> Extraction:
    """Ask the agent's model for facts about ``env.subject`` in the exchange and store the new
    ones. Never raises: what went wrong is in the result's ``error``."""
    found = Extraction()
    try:
        agent = await sync_to_async(agent_of)(workspace_id=env.workspace_id, agent_id=env.agent_id)
        if agent is None or env.subject is None:
            return found
        messages = [
            {"role": "system", "content": EXTRACT_SYSTEM},
            {"role": "user", "content": _exchange(message, answer)},
        ]
        result = await agent_call(env, node_id="extract")(
            lambda model: model_call.sampled_request(
                model, messages, temperature=0.0, max_tokens=EXTRACT_TOKENS
            )
        )
        for fact in extracted_facts(result.text):
            vector, model_key = await aembedded(env.engine_for, fact)
            try:
                stored = await sync_to_async(fact_remember)(
                    agent=agent,
                    subject=env.subject,
                    text=fact,
                    vector=vector,
                    model_key=model_key,
                    source=FactSource.EXTRACTION,
                    run_id=env.run_id,
                )
            except FactRefused:
                continue
            if stored.duplicate:
                found.duplicates += 1
            else:
                found.saved.append(stored.fact.text)
    except Exception as exc:  # memory helps later answers; it never fails this one
        log.warning("run %s: no facts extracted: %s", env.run_id, exc)
        found.error = f"no facts were extracted ({exc or type(exc).__name__})"
    return found
