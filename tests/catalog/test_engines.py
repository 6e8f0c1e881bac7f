"""Engines stream through one interface; the worker keeps each model loaded once per process."""

from __future__ import annotations

import asyncio

import pytest

from catalog.engines import engine_class, engine_kinds
from catalog.engines.base import EngineError, EngineSpec, GenerationRequest
from flows.models import RunSource, RunStatus
from flows.services import run_create
from tests.flows.helpers import logged_events, wait_for_run


def collect(engine, request: GenerationRequest) -> list:
    async def run():
        return [chunk async for chunk in engine.stream(request)]

    return asyncio.run(run())


def test_the_registry_finds_engines_by_file_and_never_imports_vllm():
    import sys

    assert {"cpu", "echo"} <= set(engine_kinds())
    assert "vllm" not in sys.modules


def test_echo_streams_the_last_user_message_and_honours_max_tokens():
    engine = engine_class("echo")(EngineSpec("echo", ""))
    messages = [{"role": "user", "content": "old"}, {"role": "user", "content": "a b c d"}]
    chunks = collect(engine, GenerationRequest(messages=messages, max_tokens=3))
    assert [c.text for c in chunks[:-1]] == ["a", " b", " c"]
    assert (chunks[-1].output_tokens, chunks[-1].finish_reason) == (3, "length")


def test_cpu_engine_streams_real_tokens_from_a_real_model(tiny_model_dir):
    engine = engine_class("cpu")(EngineSpec("cpu", str(tiny_model_dir)))
    request = GenerationRequest(messages=[{"role": "user", "content": "paris"}], max_tokens=12)
    chunks = collect(engine, request)
    text = "".join(c.text for c in chunks)
    assert len([c for c in chunks if c.text]) > 1  # streamed in pieces, not all at once
    assert chunks[-1].output_tokens == 12 and chunks[-1].finish_reason == "length"
    assert chunks[-1].input_tokens > 1
    # Greedy decoding of the same prompt gives the same text.
    assert "".join(c.text for c in collect(engine, request)) == text


def test_cpu_engine_reports_unloadable_weights():
    with pytest.raises(EngineError, match="could not load model weights '/nonexistent'"):
        engine_class("cpu")(EngineSpec("cpu", "/nonexistent"))


def test_engine_settings_are_validated():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        engine_class("echo")(EngineSpec("echo", "", {"delay_ms": -1}))


def test_the_worker_loads_a_model_once_and_reuses_it(worker, tiny_model, make_flow):
    flow = make_flow(tiny_model, max_tokens=8)
    before = worker.log().count("loading engine cpu")
    runs = [
        wait_for_run(
            run_create(
                flow=flow,
                version=flow.published_version,
                inputs={"message": m},
                source=RunSource.STUDIO,
            ).id
        )
        for m in ("first", "second", "third")
    ]
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 3
    assert worker.log().count("loading engine cpu") - before == 1
    for run in runs:
        assert run.usage["output_tokens"] == 8
        tokens = [e for e in logged_events(run.id) if e["type"] == "token"]
        assert "".join(e["data"]["text"] for e in tokens) == run.outputs["text"]
