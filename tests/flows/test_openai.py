"""The OpenAI-compatible endpoint, driven by the official ``openai`` client."""

from __future__ import annotations

import openai
import pytest

from flows.models import Run, RunSource


@pytest.fixture
def client(live_studio, api_key, echo_model, make_flow) -> openai.OpenAI:
    make_flow(echo_model)
    return openai.OpenAI(base_url=f"{live_studio}/v1", api_key=api_key, max_retries=0)


CONVERSATION = [
    {"role": "system", "content": "ignored by this flow"},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": "the last user message wins"},
]


def test_models_lists_published_flows(client):
    assert [m.id for m in client.models.list()] == ["assistant"]


def test_a_completion_answers_with_the_flows_output(client):
    completion = client.chat.completions.create(model="assistant", messages=CONVERSATION)
    assert completion.choices[0].message.content == "the last user message wins"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 5
    run = Run.objects.get()
    assert run.source == RunSource.OPENAI
    assert run.inputs == {"message": "the last user message wins"}


def test_a_streamed_completion_arrives_in_chunks(client):
    stream = client.chat.completions.create(
        model="assistant",
        messages=CONVERSATION,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) == 5
    assert "".join(pieces) == "the last user message wins"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 5


def test_errors_are_openai_errors(client, live_studio):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=CONVERSATION)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="assistant", messages=[{"role": "system", "content": "x"}]
        )
    bad = openai.OpenAI(base_url=f"{live_studio}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    assert Run.objects.count() == 0
