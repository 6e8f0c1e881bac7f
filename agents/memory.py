"""Long-term memory: facts an agent keeps about each end user, recalled by relevance.

A subject names the end user: ``user:<id>`` for a member, ``visitor:<hash>`` for an anonymous
widget visitor (``conversations.widget_tokens.visitor_end_user``). Every read and write is
filtered by agent and subject, so one end user never sees another's facts.

Callers pass vectors embedded with the embedding model that ``model_key`` names
(``knowledge.selectors.embedding_model_key``); vectors of different models are never compared.

Facts come from the agent's ``remember`` tool and, with ``Memory.extract_facts``, from the step
after each answer that asks the model for facts worth keeping (``agents/extraction.py``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.db.models import Case, FloatField, QuerySet, When
from pgvector import Vector
from pgvector.django import CosineDistance

from agents.models import Agent, Fact, FactSource
from catalog.services.models import embedding_model_default
from knowledge.selectors import embedding_model_key
from workspaces.audit import audit_record

MAX_FACT_CHARS = 1_000
MAX_SUBJECT_CHARS = 200
# An end user's facts per agent; remembering one more drops the oldest, so that memory keeps
# working without anyone tidying it (the end user and the editors see and delete facts).
MAX_FACTS_PER_SUBJECT = 500
# A fact this close (cosine similarity) to a stored one says the same thing: not stored twice.
DUPLICATE_SIMILARITY = 0.95
DEFAULT_RECALLED = 5
MAX_RECALLED = 20

_SPACES = re.compile(r"\s+")


class FactRefused(ValueError):
    """A fact or subject that cannot be stored; the message is for the model or the person."""


def user_subject(user_id: int) -> str:
    """The subject of a signed-in member."""
    return f"user:{int(user_id)}"


def _normalised(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class Remembered:
    fact: Fact
    # True when an identical or near-identical fact was already stored (``fact`` is that one).
    duplicate: bool = False
    # Facts dropped to stay under the cap (their text), oldest first.
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recalled:
    fact: Fact
    similarity: float


def _checked(subject: str, text: str) -> str:
    if not subject or len(subject) > MAX_SUBJECT_CHARS:
        raise FactRefused(f"the subject must be 1 to {MAX_SUBJECT_CHARS} characters")
    text = _normalised(text)
    if not text:
        raise FactRefused("the fact is empty")
    if len(text) > MAX_FACT_CHARS:
        raise FactRefused(f"the fact is longer than {MAX_FACT_CHARS:,} characters")
    return text


def _lock_subject(agent: Agent, subject: str) -> None:
    """Serialise writes to one subject's facts until the transaction ends, so that two
    concurrent calls cannot both miss a duplicate or both pass the cap."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"agents.fact:{agent.id}:{subject}"],
        )


def _with_similarity(facts: QuerySet[Fact], vector: list[float], model_key: str):
    # The CASE keeps the distance off rows of another model, whose dimension may differ (the
    # operator would fail on them), whatever order the planner applies the filters in.
    return facts.annotate(
        similarity=Case(
            When(model_key=model_key, then=1 - CosineDistance("embedding", Vector(vector))),
            output_field=FloatField(),
        )
    ).filter(model_key=model_key, similarity__isnull=False)


def _near_duplicate(
    agent: Agent, subject: str, text: str, vector: list[float], model_key: str
) -> Fact | None:
    facts = facts_of(agent=agent, subject=subject)
    if (same := facts.filter(text__iexact=text).first()) is not None:
        return same
    nearest = _with_similarity(facts, vector, model_key).order_by("-similarity").first()
    if nearest is not None and nearest.similarity >= DUPLICATE_SIMILARITY:
        return nearest
    return None


def _drop_oldest(agent: Agent, subject: str) -> tuple[str, ...]:
    """Make room for one more fact: delete the oldest beyond ``MAX_FACTS_PER_SUBJECT - 1``."""
    facts = facts_of(agent=agent, subject=subject)
    excess = facts.count() - (MAX_FACTS_PER_SUBJECT - 1)
    if excess <= 0:
        return ()
    oldest = list(facts.order_by("created_at", "id").values_list("id", "text")[:excess])
    Fact.objects.filter(id__in=[i for i, _ in oldest]).delete()
    return tuple(t for _, t in oldest)


def fact_remember(
    *,
    agent: Agent,
    subject: str,
    text: str,
    vector: list[float],
    model_key: str,
    source: str = FactSource.TOOL,
    run_id: str = "",
) -> Remembered:
    """Store ``text`` about ``subject``, unless an identical (ignoring case and spacing) or
    near-identical fact is stored already; past the cap, the oldest facts are dropped. Takes a
    transaction-scoped advisory lock per (agent, subject). A call repeated after a killed worker
    finds its own fact as a duplicate, so it is safe to retry. Raises ``FactRefused``."""
    text = _checked(subject, text)
    with transaction.atomic():
        _lock_subject(agent, subject)
        existing = _near_duplicate(agent, subject, text, vector, model_key)
        if existing is not None:
            return Remembered(fact=existing, duplicate=True)
        dropped = _drop_oldest(agent, subject)
        fact = Fact.objects.create(
            workspace_id=agent.workspace_id,
            agent=agent,
            subject=subject,
            text=text,
            embedding=Vector(vector),
            model_key=model_key,
            source=source,
            run_id=run_id[:64],
        )
    return Remembered(fact=fact, dropped=dropped)


def fact_recall(
    *, agent: Agent, subject: str, vector: list[float], model_key: str, k: int = DEFAULT_RECALLED
) -> list[Recalled]:
    """Up to ``k`` facts of ``subject``, most relevant to ``vector`` first (exact cosine)."""
    k = max(1, min(int(k), MAX_RECALLED))
    facts = _with_similarity(facts_of(agent=agent, subject=subject), vector, model_key)
    return [Recalled(fact=f, similarity=f.similarity) for f in facts.order_by("-similarity")[:k]]


def fact_delete(*, agent: Agent, fact_id: int, actor, subject: str | None = None) -> bool:
    """Delete one fact of ``agent``; with ``subject``, only if it is about that subject (an end
    user deleting their own). Audited. False when there was no such fact."""
    facts = Fact.objects.filter(agent=agent, id=fact_id)
    if subject is not None:
        facts = facts.filter(subject=subject)
    with transaction.atomic():
        fact = facts.select_for_update().first()
        if fact is None:
            return False
        audit_record(
            workspace=agent.workspace_id,
            actor=actor,
            action="agent.fact_delete",
            target=agent,
            before={"subject": fact.subject, "fact": fact.id},
        )
        fact.delete()
    return True


async def aembedded(engine_for: Callable[[Any], Awaitable[Any]], text: str) -> tuple[list, str]:
    """``text``'s vector from the studio's default embedding model, with that model's key."""
    model = await sync_to_async(embedding_model_default)()
    engine = await engine_for(model)
    vector = (await engine.embed([text]))[0]
    return list(vector), embedding_model_key(model)


def agent_of(*, workspace_id: int, agent_id: int) -> Agent | None:
    return Agent.objects.filter(workspace_id=workspace_id, id=agent_id).first()


UNAVAILABLE = "Memory is not available in this conversation: the end user is anonymous."


async def amemory_agent(
    *, workspace_id: int, agent_id: int | None, subject: str | None
) -> Agent | None:
    """The agent whose memory a tool call reads or writes; None for an anonymous call (no
    end user) or an agent that is gone: the tools then answer ``UNAVAILABLE``."""
    if subject is None or agent_id is None:
        return None
    return await sync_to_async(agent_of)(workspace_id=workspace_id, agent_id=agent_id)


# --- selectors ------------------------------------------------------------------------------


def facts_of(*, agent: Agent, subject: str) -> QuerySet[Fact]:
    """The facts ``agent`` keeps about ``subject``, newest first."""
    return Fact.objects.filter(agent=agent, subject=subject).defer("embedding")


def facts_by_subject(agent: Agent, *, limit: int = 1_000) -> list[tuple[str, list[Fact]]]:
    """The agent's facts grouped by subject (subjects in order, newest facts first), at most
    ``limit`` facts in all."""
    facts = (
        Fact.objects.filter(agent=agent)
        .defer("embedding")
        .order_by("subject", "-created_at", "-id")[:limit]
    )
    grouped: dict[str, list[Fact]] = {}
    for fact in facts:
        grouped.setdefault(fact.subject, []).append(fact)
    return list(grouped.items())


def subject_labels(subjects: list[str]) -> dict[str, str]:
    """How each subject reads on a page: a member's username, a visitor's short hash."""
    from django.contrib.auth import get_user_model

    ids = [int(s[5:]) for s in subjects if s.startswith("user:") and s[5:].isdigit()]
    names = dict(get_user_model().objects.filter(id__in=ids).values_list("id", "username"))
    labels = {}
    for subject in subjects:
        kind, _, rest = subject.partition(":")
        if kind == "user" and rest.isdigit() and int(rest) in names:
            labels[subject] = names[int(rest)]
        elif kind == "visitor":
            labels[subject] = f"Visitor {rest[:8]}"
        else:
            labels[subject] = subject
    return labels
