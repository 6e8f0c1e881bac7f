"""The evaluators on fixed cases: each one's verdicts, its edge cases and its limits with
hostile input (a backtracking pattern, a huge schema), semantic similarity with the bundled
embedder, and the judge against a scripted model at the network boundary."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync
from pydantic import ValidationError

from catalog.models import Usage
from catalog.services import model_create
from catalog.services.prompts import (
    prompt_create,
    prompt_version_approve,
    prompt_version_publish,
)
from evals.evaluators import Context, Output, evaluator, evaluator_classes
from evals.schemas import CaseData
from tests.agents.scripted_model import ScriptedModel, answer
from tests.knowledge.helpers import engine_for

CASE = CaseData(inputs={"message": "Capital of France?"}, expected_output="Paris")


def score(kind: str, output: str, case: CaseData = CASE, context=None, **config):
    context = context or Context(workspace_id=0)
    return async_to_sync(evaluator(kind, config).score)(case, Output(text=output), context)


def test_every_evaluator_is_registered():
    assert set(evaluator_classes()) == {
        "exact_match",
        "contains",
        "regex",
        "json_schema",
        "semantic_similarity",
        "llm_judge",
        "hit_rate",
        "mrr",
        "ndcg",
    }
    with pytest.raises(LookupError):
        evaluator("nope")


# --- exact match ----------------------------------------------------------------------------


def test_exact_match_normalises_case_space_and_final_punctuation():
    assert score("exact_match", "  paris.  ").passed
    assert not score("exact_match", "Paris, France").passed
    assert not score("exact_match", "paris", case_sensitive=True).passed
    strict = score("exact_match", "Paris.", ignore_trailing_punctuation=False)
    assert (strict.value, strict.passed) == (0.0, False)


def test_exact_match_without_expected_output_is_an_error():
    result = score("exact_match", "Paris", CaseData(inputs={"message": "x"}))
    assert result.error == "the case has no expected output"
    with pytest.raises(ValidationError):
        evaluator("exact_match", {"unknown": True})


# --- contains -------------------------------------------------------------------------------


def test_contains_all_or_any_with_a_partial_value():
    phrases = ["Paris", "France"]
    half = score("contains", "It is paris.", phrases=phrases)
    assert (half.value, half.passed, half.details["missing"]) == (0.5, False, ["France"])
    assert score("contains", "It is paris.", phrases=phrases, mode="any").passed
    assert not score("contains", "It is paris.", phrases=["Paris"], case_sensitive=True).passed
    assert score("contains", "The answer: Paris!").passed  # the expected output by default


# --- regex ----------------------------------------------------------------------------------


def test_regex_search_and_full_match():
    assert score("regex", "Answer: 1889.", pattern=r"\b18\d\d\b").passed
    assert not score("regex", "Answer: 1889.", pattern=r"\d+", full_match=True).passed
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        evaluator("regex", {"pattern": "(unclosed"})
    with pytest.raises(ValidationError):
        evaluator("regex", {"pattern": "a" * 1001})


def test_a_backtracking_pattern_fails_its_case_in_bounded_time():
    started = time.monotonic()
    result = score("regex", "x" * 5000, pattern=r"(x+x+)+y")
    assert time.monotonic() - started < 3
    assert not result.passed and "took longer than" in result.error


# --- JSON schema ----------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "year": {"type": "integer"}},
    "required": ["city"],
}


def test_json_schema_valid_invalid_and_not_json():
    assert score("json_schema", '```json\n{"city": "Paris"}\n```', json_schema=SCHEMA).passed
    wrong = score("json_schema", '{"city": "Paris", "year": "old"}', json_schema=SCHEMA)
    assert not wrong.passed and wrong.reason.startswith("year:")
    assert score("json_schema", "Paris", json_schema=SCHEMA).reason.startswith("not JSON")


def test_a_huge_or_invalid_schema_is_refused():
    huge = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(2000)}}
    with pytest.raises(ValidationError, match="longer than"):
        evaluator("json_schema", {"json_schema": huge})
    with pytest.raises(ValidationError, match="not a valid JSON schema"):
        evaluator("json_schema", {"json_schema": {"type": "nonsense"}})


# --- retrieval ------------------------------------------------------------------------------

SOURCES_CASE = CaseData(inputs={"message": "q"}, expected_sources=["b.pdf", "c.pdf"])


def retrieval(kind: str, documents: list[str], **config):
    sources = [{"document": name, "document_id": i} for i, name in enumerate(documents, 100)]
    result = async_to_sync(evaluator(kind, config).score)(
        SOURCES_CASE, Output(text="", sources=sources), Context(workspace_id=0)
    )
    return result.value


def test_retrieval_metrics_against_expected_sources():
    ranked = ["a.pdf", "b.pdf", "b.pdf", "c.pdf"]  # b cited twice counts once
    assert retrieval("hit_rate", ranked) == 1.0
    assert retrieval("hit_rate", ranked, k=1) == 0.0
    assert retrieval("mrr", ranked) == 0.5
    log3, log5 = 1.5849625007211562, 2.321928094887362
    assert retrieval("ndcg", ranked) == pytest.approx((1 / log3 + 1 / log5) / (1 + 1 / log3))
    assert retrieval("ndcg", ["B.pdf", "c.pdf"]) == pytest.approx(1.0)
    assert retrieval("mrr", []) == 0.0


def test_a_source_matches_by_document_id_too():
    case = CaseData(inputs={"message": "q"}, expected_sources=["101"])
    result = async_to_sync(evaluator("mrr").score)(
        case, Output(text="", sources=[{"document_id": 7}, {"document_id": 101}]), Context(0)
    )
    assert result.value == 0.5


# --- semantic similarity with the bundled embedder ------------------------------------------


@pytest.mark.django_db
def test_semantic_similarity_with_the_bundled_embedding_model(embedding_model):
    context = Context(workspace_id=0, engine_for=engine_for())
    case = CaseData(inputs={"message": "q"}, expected_output="The cat sat on the mat.")
    close = score("semantic_similarity", "A cat was sitting on the mat.", case, context)
    far = score("semantic_similarity", "Interest rates rose in the third quarter.", case, context)
    assert 0 <= far.value < close.value <= 1
    assert close.details["model"] == embedding_model.slug
    missing = score("semantic_similarity", "x", case, context, model="no-such-model")
    assert missing.error == "there is no embedding model 'no-such-model'"


# --- LLM as judge against a scripted model ---------------------------------------------------


@pytest.fixture(scope="module")
def server():
    scripted = ScriptedModel().start()
    yield scripted
    scripted.stop()


@pytest.fixture
def judge(server, settings, workspace, owner):
    settings.STUDIO_EGRESS_ALLOW_MODELS = ["127.0.0.1"]
    model_create(
        slug="judge",
        name="Judge",
        engine="openai_compatible",
        weights="served-model",
        settings={"base_url": f"{server.url}/v1", "retries": 0},
        workspace=workspace,
        actor=owner,
    )
    return server


def judged(workspace, **config):
    context = Context(workspace_id=workspace.id, engine_for=engine_for(), usage={"user_id": None})
    return score("llm_judge", "Paris.", CASE, context, model="judge", **config)


def test_the_judge_scores_from_its_json_verdict_and_is_metered(judge, workspace):
    judge.plan(answer('{"score": 4, ', '"reason": "Correct and brief."}'))
    result = judged(workspace, rubric="Is it the capital?")
    assert (result.value, result.passed, result.reason) == (0.75, True, "Correct and brief.")
    system, user = judge.messages(0)
    assert "Is it the capital?" in system["content"]
    assert "<answer>\nParis.\n</answer>" in user["content"]
    assert "<expected answer>\nParis\n</expected answer>" in user["content"]
    usage = Usage.objects.get(workspace=workspace, model_slug="judge")
    assert (usage.source, usage.node_id, usage.input_tokens) == ("evaluation", "llm_judge", 30)


@pytest.mark.parametrize(
    "text, error",
    [
        ("It is fine, I would say 4.", "holds no JSON object"),
        ('{"score": 9, "reason": "x"}', "not a number from 1 to 5"),
        ('{"score": "high"}', "not a number from 1 to 5"),
        ('{"score": 4,, }', "not valid JSON"),
    ],
)
def test_a_malformed_verdict_is_an_error_score(judge, workspace, text, error):
    judge.plan(answer(text))
    result = judged(workspace)
    assert not result.passed and result.value == 0 and error in result.error


def test_the_rubric_can_come_from_the_prompt_library(judge, workspace, owner):
    prompt = prompt_create(
        workspace=workspace,
        slug="strict-grader",
        name="Strict grader",
        system="Be strict about dates.",
        template="Grade 1 unless exact.",
        actor=owner,
    )
    version = prompt_version_publish(version=prompt.versions.get(), actor=owner)
    prompt_version_approve(version=version, actor=owner)
    judge.plan(answer('{"score": 2, "reason": "Vague."}'))
    result = judged(workspace, prompt="strict-grader")
    assert not result.passed
    assert "Be strict about dates." in judge.messages(-1)[0]["content"]
    with pytest.raises(ValidationError, match="not both"):
        evaluator("llm_judge", {"model": "judge", "rubric": "r", "prompt": "p"})


def test_an_unknown_judge_model_or_prompt_is_an_error_score(judge, workspace):
    assert judged(workspace, prompt="missing").error.startswith("the prompt 'missing'")
    context = Context(workspace_id=workspace.id, engine_for=engine_for())
    ghost = score("llm_judge", "x", CASE, context, model="ghost")
    assert ghost.error == "there is no model 'ghost'"
