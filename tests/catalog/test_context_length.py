"""A prompt longer than the model takes (with room for its answer) is refused before it runs,
naming both numbers: the flow run fails with that reason and the OpenAI-compatible API says it.
The echo engine counts with the studio's encoding against the catalog entry's context length;
the CPU engine counts with its own tokenizer against its model's positions."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from catalog.engines import engine_class
from catalog.engines.base import ContextTooLong, EngineSpec, GenerationRequest
from catalog.models import Usage
from flows.models import RunSource, RunStatus
from flows.services import run_create
from tests.flows.helpers import wait_for_run

REFUSAL = re.compile(
    r"the prompt is [\d,]+ tokens; Short echo takes at most 64 "
    r"\(including the answer's max tokens, 16\)"
)
LONG = "word " * 200


@pytest.fixture
def short_echo(db):
    from catalog.services import model_create

    return model_create(slug="short-echo", name="Short echo", engine="echo", context_length=64)


def _run(flow, message: str):
    run = run_create(
        flow=flow, version=flow.published_version, inputs={"message": message}, source="studio"
    )
    return wait_for_run(run.id)


def test_a_flow_run_over_the_context_fails_with_the_reason(worker, short_echo, make_flow):
    flow = make_flow(short_echo, max_tokens=16)
    assert _run(flow, "a short question").status == RunStatus.SUCCEEDED

    run = _run(flow, LONG)

    assert run.status == RunStatus.FAILED
    assert REFUSAL.search(run.error), run.error
    failed = Usage.objects.filter(model=short_echo, ok=False).get()
    assert REFUSAL.search(failed.error)
    assert failed.output_tokens == 0  # nothing was generated


def test_the_openai_compatible_api_answers_with_the_reason(
    client, worker, short_echo, make_flow, api_key
):
    make_flow(short_echo, max_tokens=16)
    response = client.post(
        reverse("flows:openai-chat-completions"),
        json.dumps({"model": "assistant", "messages": [{"role": "user", "content": LONG}]}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    assert REFUSAL.search(response.json()["error"]["message"])


def test_the_echo_engine_counts_with_the_shared_encoding():
    engine = engine_class("echo")(EngineSpec("echo", "", context_length=64))
    fits = GenerationRequest(messages=[{"role": "user", "content": "word " * 40}], max_tokens=16)
    engine.context_check(fits, model="Echo")
    over = GenerationRequest(messages=[{"role": "user", "content": "word " * 45}], max_tokens=16)
    with pytest.raises(ContextTooLong, match=r"the prompt is 50 tokens; Echo takes at most 64"):
        engine.context_check(over, model="Echo")


def test_the_cpu_engine_counts_with_its_tokenizer_and_its_models_positions(tiny_model_dir):
    # The catalog says 2,048; the model itself has 512 positions: the smaller one holds.
    engine = engine_class("cpu")(EngineSpec("cpu", str(tiny_model_dir), context_length=2048))
    assert engine.context_limit() == 512
    request = GenerationRequest(
        messages=[{"role": "user", "content": "paris " * 600}], max_tokens=12
    )
    tokens = engine.prompt_tokens(request)
    assert tokens == len(engine._prompt_ids(request)) and tokens > 500
    with pytest.raises(
        ContextTooLong, match=rf"the prompt is {tokens:,} tokens; Tiny takes at most 512"
    ):
        engine.context_check(request, model="Tiny")


def test_the_real_cpu_model_refuses_a_long_run(worker, tiny_model, make_flow):
    flow = make_flow(tiny_model, max_tokens=8)
    run = _run(flow, "paris " * 600)
    assert run.status == RunStatus.FAILED
    assert "Tiny Llama takes at most 512 (including the answer's max tokens, 8)" in run.error
    assert run.source == RunSource.STUDIO
