"""Long-term memory: the remember and recall tools with the bundled embedding model, dedupe,
the cap per end user, and that one end user never reads another's facts."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from agents import memory
from agents.memory import fact_delete, fact_recall, fact_remember, facts_of, user_subject
from agents.models import Fact
from agents.services import agent_create
from agents.tools import tools
from agents.tools.base import UNTRUSTED_NOTICE, ToolContext
from tests.knowledge.helpers import engine_for, in_process_embed

ALICE = "user:101"
BOB = "visitor:" + "b" * 40


@pytest.fixture
def agent(workspace, owner, embedding_model):
    return agent_create(workspace=workspace, name="Helper", slug="helper", actor=owner)


def _call(name: str, agent, subject: str | None, **params):
    tool = tools()[name]
    ctx = ToolContext(
        workspace_id=agent.workspace_id,
        user_id=None,
        engine_for=engine_for(),
        agent_id=agent.id,
        subject=subject,
    )
    return async_to_sync(tool.arun)(ctx, tool.Config(), tool.Params(**params))


def _listed(result) -> list[str]:
    """The facts inside the untrusted-data block, in order."""
    inside = result.content.split('<tool_output source="memory">\n', 1)[1]
    return inside.split("\n</tool_output>", 1)[0].splitlines()


def _store(agent, subject: str, text: str, embedding_model):
    from knowledge.selectors import embedding_model_key

    vector = in_process_embed()(embedding_model, [text])[0]
    return fact_remember(
        agent=agent,
        subject=subject,
        text=text,
        vector=vector,
        model_key=embedding_model_key(embedding_model),
    )


def test_remembered_facts_are_recalled_by_relevance_as_untrusted_data(agent):
    for fact in (
        "The user is allergic to peanuts.",
        "The user's daughter is called Maya.",
        "The user lives in Lyon, France.",
    ):
        assert _call("remember", agent, ALICE, fact=fact).content == "Remembered."
    result = _call("recall", agent, ALICE, query="Which foods must I avoid suggesting?")
    assert result.content.startswith(UNTRUSTED_NOTICE)
    assert _listed(result)[0] == "- The user is allergic to peanuts."
    assert len(result.details["facts"]) == 3
    where = _call("recall", agent, ALICE, query="What city does the user live in?")
    assert _listed(where)[0] == "- The user lives in Lyon, France."


def test_an_identical_or_near_identical_fact_is_stored_once(agent, embedding_model):
    _call("remember", agent, ALICE, fact="The user prefers tea over coffee.")
    again = _call("remember", agent, ALICE, fact="  the user prefers TEA over coffee. ")
    assert again.content == "Already remembered; nothing new was saved."
    near = _store(agent, ALICE, "The user prefers tea over coffee!", embedding_model)
    assert near.duplicate
    other = _store(agent, ALICE, "The user drives a red bicycle to work.", embedding_model)
    assert not other.duplicate
    assert facts_of(agent=agent, subject=ALICE).count() == 2


def test_past_the_cap_the_oldest_fact_is_dropped(agent, embedding_model, monkeypatch):
    monkeypatch.setattr(memory, "MAX_FACTS_PER_SUBJECT", 3)
    texts = [
        "The user plays the cello.",
        "The user has two cats.",
        "The user works night shifts at a hospital.",
        "The user is learning Japanese.",
    ]
    outcomes = [_store(agent, ALICE, t, embedding_model) for t in texts]
    assert outcomes[-1].dropped == ("The user plays the cello.",)
    kept = list(facts_of(agent=agent, subject=ALICE).values_list("text", flat=True))
    assert kept == texts[:0:-1]
    result = _call("remember", agent, ALICE, fact="The user runs marathons.")
    assert "1 oldest fact(s) were forgotten" in result.content


def test_one_end_user_never_recalls_another_ones_facts(agent, embedding_model):
    _call("remember", agent, ALICE, fact="The user's PIN hint is 'blue door'.")
    assert _call("recall", agent, BOB, query="PIN hint").content == (
        "You have no saved facts about this user."
    )
    _call("remember", agent, BOB, fact="The user likes jazz.")
    from knowledge.selectors import embedding_model_key

    vector = in_process_embed()(embedding_model, ["PIN hint"])[0]
    key = embedding_model_key(embedding_model)
    recalled = fact_recall(agent=agent, subject=BOB, vector=vector, model_key=key, k=20)
    assert [r.fact.text for r in recalled] == ["The user likes jazz."]


def test_anonymous_calls_have_no_memory(agent):
    result = _call("remember", agent, None, fact="The user is Bob.")
    assert "not available" in result.content
    assert "not available" in _call("recall", agent, None, query="name").content
    assert not Fact.objects.exists()


def test_fact_text_is_bounded(agent):
    with pytest.raises(ValueError):
        tools()["remember"].Params(fact="x" * (memory.MAX_FACT_CHARS + 1))
    with pytest.raises(memory.FactRefused):
        fact_remember(agent=agent, subject=ALICE, text="   ", vector=[0.1] * 384, model_key="k")


def test_deleting_a_fact_of_another_subject_deletes_nothing(agent, owner, embedding_model):
    fact = _store(agent, ALICE, "The user owns a sailboat.", embedding_model).fact
    assert not fact_delete(agent=agent, fact_id=fact.id, actor=owner, subject=BOB)
    assert Fact.objects.filter(id=fact.id).exists()
    assert fact_delete(agent=agent, fact_id=fact.id, actor=owner, subject=ALICE)
    assert not Fact.objects.filter(id=fact.id).exists()
    assert user_subject(7) == "user:7"


def test_facts_of_another_embedding_model_are_never_compared(agent, embedding_model):
    # A fact embedded by a model since replaced (another dimension): recall and dedupe skip it
    # rather than fail on vectors that cannot be compared.
    fact_remember(
        agent=agent,
        subject=ALICE,
        text="The user is left-handed.",
        vector=[1.0, 0.0, 0.0],
        model_key="retired-model",
    )
    assert _call("remember", agent, ALICE, fact="The user is left-handed!").content == (
        "Remembered."
    )
    recalled = _call("recall", agent, ALICE, query="handedness")
    assert _listed(recalled) == ["- The user is left-handed!"]


@pytest.mark.django_db(transaction=True)
def test_a_fact_remembered_while_the_same_is_being_stored_waits_and_is_a_duplicate(
    workspace, owner
):
    import threading

    from django.db import connection, transaction

    agent = agent_create(workspace=workspace, name="Racer", slug="racer", actor=owner)
    pilot = {"subject": ALICE, "text": "The user is a pilot.", "vector": [0.5] * 384}
    outcomes = []

    def remember() -> None:
        try:
            outcomes.append(fact_remember(agent=agent, model_key="race", **pilot).duplicate)
        finally:
            connection.close()

    other = threading.Thread(target=remember)
    with transaction.atomic():
        assert not fact_remember(agent=agent, model_key="race", **pilot).duplicate
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive()  # waits for the first one's transaction
    other.join(timeout=10)
    assert outcomes == [True]
    assert facts_of(agent=agent, subject=ALICE).count() == 1
