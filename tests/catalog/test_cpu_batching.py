"""The CPU engine batches concurrent requests: they stream together, leave when done or
cancelled, keep their own sampling settings, and greedy answers do not depend on the company."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading

import pytest

from catalog.bundled import BUNDLED_PREFIX, SMOLLM2
from catalog.engines import engine_class
from catalog.engines.base import Chunk, Engine, EngineError, EngineSpec, GenerationRequest

# A request may wait on others, but never this long: a hang fails the test instead.
TIMEOUT_S = 120


def cpu_engine(weights: str, **settings) -> Engine:
    return engine_class("cpu")(EngineSpec("cpu", weights, settings))


def ask(text: str, max_tokens: int, **sampling) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": text}], max_tokens=max_tokens, **sampling
    )


async def answer(engine: Engine, request: GenerationRequest, events: list | None = None) -> str:
    """The streamed text; ``events`` records ("first", text) and ("end", text) in order."""
    parts: list[str] = []
    last = Chunk()
    async for chunk in engine.stream(request):
        if chunk.text and not parts and events is not None:
            events.append(("first", request.messages[-1]["content"]))
        parts.append(chunk.text)
        last = chunk
    if events is not None:
        events.append(("end", request.messages[-1]["content"]))
    assert last.output_tokens and last.finish_reason in {"stop", "length"}
    return "".join(parts)


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, TIMEOUT_S)

    return asyncio.run(bounded())


@pytest.fixture
def tiny_engine(tiny_model_dir):
    engine = cpu_engine(str(tiny_model_dir))
    yield engine
    engine.close()


def test_concurrent_requests_stream_together(tiny_engine):
    events: list = []
    prompts = ["paris", "berlin", "flows", "tokens"]

    async def go():
        return await asyncio.gather(*(answer(tiny_engine, ask(p, 16), events) for p in prompts))

    texts = run(go())
    assert all(texts)
    # Every request has its first token before any request ends: they were decoded together.
    first_end = [kind for kind, _ in events].index("end")
    assert sorted(p for kind, p in events[:first_end] if kind == "first") == sorted(prompts)


def test_max_batch_size_makes_the_others_wait(tiny_model_dir):
    engine = cpu_engine(str(tiny_model_dir), max_batch_size=1)
    events: list = []

    async def go():
        return await asyncio.gather(*(answer(engine, ask(p, 8), events) for p in ("a", "b")))

    try:
        run(go())
    finally:
        engine.close()
    assert [kind for kind, _ in events] == ["first", "end", "first", "end"]


def test_a_request_whose_consumer_stops_frees_its_slot(tiny_model_dir):
    # One slot, and a first request that would take hours: the second gets the slot only if
    # stopping to read the first takes it out of the batch.
    engine = cpu_engine(str(tiny_model_dir), max_batch_size=1)
    endless = ask("paris", 10**7)

    async def go():
        async with contextlib.aclosing(engine.stream(endless)) as chunks:
            async for _ in chunks:
                break
        return await asyncio.wait_for(answer(engine, ask("berlin", 6)), 30)

    try:
        assert run(go())
    finally:
        engine.close()


def test_a_cancelled_consumer_task_frees_its_slot(tiny_model_dir):
    engine = cpu_engine(str(tiny_model_dir), max_batch_size=1)

    async def go():
        started = asyncio.Event()

        async def endless():
            async for _ in engine.stream(ask("paris", 10**7)):
                started.set()

        task = asyncio.create_task(endless())
        await started.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return await asyncio.wait_for(answer(engine, ask("berlin", 6)), 30)

    try:
        assert run(go())
    finally:
        engine.close()


class PrefillRecorder:
    """Records the shape of each prompt-reading forward pass (more than one token per row) of
    the engine's model; until ``release`` is set, the first pass waits, so requests sent
    meanwhile queue up together."""

    def __init__(self, engine: Engine) -> None:
        self.release = threading.Event()
        self.prefills: list[tuple[int, int]] = []
        self._handle = engine.model.register_forward_pre_hook(self._seen, with_kwargs=True)

    def _seen(self, module, args, kwargs) -> None:
        rows, length = kwargs["input_ids"].shape
        if length > 1:
            self.prefills.append((rows, length))
        self.release.wait(TIMEOUT_S)

    def remove(self) -> None:
        self.release.set()
        self._handle.remove()


async def burst_behind_a_held_request(
    engine: Engine, recorder: PrefillRecorder, requests: list[GenerationRequest]
) -> tuple[str, list[str]]:
    """Start one request, hold the model in its first pass until ``requests`` are all queued,
    then let everything run; the answers of the first request and of the burst."""
    first = asyncio.create_task(answer(engine, ask("paris", 4)))
    while not recorder.prefills:
        await asyncio.sleep(0.01)
    burst = [asyncio.create_task(answer(engine, r)) for r in requests]
    await asyncio.sleep(0.1)  # each task submits its request before its first wait
    recorder.release.set()
    return await first, await asyncio.gather(*burst)


def test_requests_waiting_together_are_read_in_one_prefill(tiny_engine):
    # Prompts of different lengths: the shorter ones are left-padded in the shared pass.
    requests = [ask(text, 12) for text in ("a", "paris is big", "the river flows to the sea")]
    alone = [run(answer(tiny_engine, r)) for r in requests]
    recorder = PrefillRecorder(tiny_engine)
    try:
        _, together = run(burst_behind_a_held_request(tiny_engine, recorder, requests))
    finally:
        recorder.remove()
    assert [rows for rows, _ in recorder.prefills] == [1, 3]
    assert together == alone


def test_a_burst_beyond_the_prefill_budget_is_read_over_several_rounds(tiny_engine, tiny_model_dir):
    # Five prompts of one length and a budget that fits two of them per round; a prompt longer
    # than the whole budget is still read, alone.
    requests = [ask("paris", 6) for _ in range(5)]
    length = len(tiny_engine._prompt_ids(requests[0]))
    engine = cpu_engine(str(tiny_model_dir), max_prefill_tokens=2 * length)
    long = ask("a long prompt " * 20, 6)
    recorder = PrefillRecorder(engine)
    try:
        _, texts = run(burst_behind_a_held_request(engine, recorder, [*requests, long]))
    finally:
        recorder.remove()
        engine.close()
    assert texts[:5] == [texts[0]] * 5  # ``answer`` checked that every request finished
    rounds = recorder.prefills[1:]
    assert [rows for rows, _ in rounds] == [2, 2, 1, 1]
    assert all(rows * length <= engine.settings.max_prefill_tokens for rows, length in rounds[:3])


def test_top_p_and_temperature_are_per_request(tiny_engine):
    greedy = ask("paris", 24)
    # A nucleus this small holds only the most likely token: sampling from it is greedy.
    narrow = ask("paris", 24, temperature=1.0, top_p=1e-9)
    hot = [ask("paris", 24, temperature=2.0) for _ in range(4)]

    async def go():
        return await asyncio.gather(*(answer(tiny_engine, r) for r in [greedy, narrow, *hot]))

    greedy_text, narrow_text, *hot_texts = run(go())
    assert narrow_text == greedy_text
    # Random weights give a flat distribution: hot samples differ from greedy and each other.
    assert greedy_text not in hot_texts and len(set(hot_texts)) > 1


def test_closing_the_engine_fails_its_requests_with_engine_error(tiny_model_dir):
    engine = cpu_engine(str(tiny_model_dir))

    async def go():
        chunks = engine.stream(ask("paris", 10**7))
        await anext(chunks)
        await asyncio.to_thread(engine.close)
        with pytest.raises(EngineError, match="generation failed: the engine was closed"):
            async for _ in chunks:
                pass
        with pytest.raises(EngineError, match="generation failed: the engine is closed"):
            await answer(engine, ask("berlin", 4))

    run(go())


def test_the_threads_setting_wins(tiny_model_dir):
    import torch

    def in_a_new_thread() -> int:
        # torch's setting is process-wide for threads started after it is made.
        seen: list[int] = []
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        return seen[0]

    before = in_a_new_thread()
    engine = cpu_engine(str(tiny_model_dir), threads=3)
    try:
        run(answer(engine, ask("paris", 2)))
        assert in_a_new_thread() == 3
    finally:
        engine.close()
        torch.set_num_threads(before)


QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Name three primary colours.",
    "Explain what a CPU does in one sentence.",
    "Give me a tip for learning to cook.",
    "Why is the sky blue?",
]


@pytest.mark.slow
def test_greedy_answers_are_the_same_alone_and_in_a_batch():
    engine = cpu_engine(BUNDLED_PREFIX + SMOLLM2)
    requests = [ask(q, 48) for q in QUESTIONS]

    async def go():
        alone = [await answer(engine, r) for r in requests]
        together = await asyncio.gather(*(answer(engine, r) for r in requests))
        # Late joiners: the batch already runs when the second half arrives.
        first = [asyncio.create_task(answer(engine, r)) for r in requests[:3]]
        await asyncio.sleep(0.5)
        staggered = await asyncio.gather(*first, *(answer(engine, r) for r in requests[3:]))
        return alone, together, staggered

    try:
        alone, together, staggered = run(go())
    finally:
        engine.close()
    assert "Paris" in alone[0]
    assert together == alone
    assert staggered == alone


@pytest.mark.slow
def test_an_answer_that_ends_reports_stop_and_its_token_counts():
    engine = cpu_engine(BUNDLED_PREFIX + SMOLLM2)
    request = ask("What is the capital of France? Answer in one word.", 64)

    async def go():
        return await asyncio.gather(*(collect(engine, request) for _ in range(3)))

    async def collect(engine: Engine, request: GenerationRequest) -> list[Chunk]:
        return [chunk async for chunk in engine.stream(request)]

    try:
        answers = run(go())
    finally:
        engine.close()
    for chunks in answers:
        last = chunks[-1]
        assert (last.finish_reason, last.text) == ("stop", "")
        assert 0 < last.output_tokens < 64 and last.input_tokens > 5
        assert "Paris" in "".join(c.text for c in chunks)


# --- repetition controls ---------------------------------------------------------------------


def _row(output_ids: list[int], **controls):
    from catalog.engines.cpu_batch import Sequence

    row = Sequence(
        prompt_ids=[0], max_tokens=64, temperature=0.0, top_p=1.0, deliver=print, **controls
    )
    for token in output_ids:
        row.remember(token)
    return row


def test_the_repetition_penalty_moves_the_answer_off_a_token_it_already_holds():
    import torch

    from catalog.engines.cpu_batch import pick_tokens

    # Token 2 leads narrowly; the answer already holds it twice.
    logits = torch.tensor([[0.0, 1.0, 3.0, 2.8], [0.0, 1.0, 3.0, 2.8], [-5.0, -1.0, -3.0, -3.2]])
    rows = [
        _row([2, 2], repetition_penalty=1.2),
        _row([2, 2]),  # no penalty: the same logits give token 2
        _row([2], repetition_penalty=1.2),  # a negative logit is pushed further down
    ]
    assert pick_tokens(rows, logits.clone()) == [3, 2, 1]


def test_no_repeat_ngrams_ban_the_token_that_would_close_a_repeat():
    import torch

    from catalog.engines.cpu_batch import pick_tokens

    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0, 5.0, 4.0]] * 2)
    # "7 8 4 … 7 8" : with trigrams banned, 4 would repeat "7 8 4"; the runner-up wins.
    looping = [7, 8, 4, 1, 7, 8]
    logits = torch.cat([logits, torch.zeros(2, 4)], dim=1)
    rows = [_row(looping, no_repeat_ngram_size=3), _row(looping)]
    assert pick_tokens(rows, logits.clone()) == [5, 4]
    assert rows[0].banned() == {4}


@pytest.mark.slow
def test_a_bundled_model_loop_is_broken_by_its_settings():
    """Asked to repeat a word, the bundled model loops greedily; with four-token runs banned
    it cannot say the word five times in a row."""
    request = ask("Repeat the word Pixel forever: Pixel Pixel Pixel", 32)
    looped = re.compile(r"\b(\w+)(\W+\1\b){4,}")
    texts = []
    for settings in ({}, {"no_repeat_ngram_size": 4}):
        engine = cpu_engine(BUNDLED_PREFIX + SMOLLM2, **settings)
        try:
            texts.append(run(answer(engine, request)))
        finally:
            engine.close()
    assert looped.search(texts[0]), f"the model did not loop: {texts[0]!r}"
    assert not looped.search(texts[1]), texts[1]
