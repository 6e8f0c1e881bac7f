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
    # The turns before it are the conversation the flow's model nodes remember.
    assert run.history == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
    ]


@pytest.fixture
def paced_client(live_studio, api_key, make_flow) -> openai.OpenAI:
    """A flow whose model makes a token every 30 ms: each token is a chunk of its own."""
    from catalog.services import model_create

    make_flow(model_create(slug="paced", name="Paced", engine="echo", settings={"delay_ms": 30}))
    return openai.OpenAI(base_url=f"{live_studio}/v1", api_key=api_key, max_retries=0)


def test_a_streamed_completion_arrives_in_chunks(paced_client):
    stream = paced_client.chat.completions.create(
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


def test_tokens_made_at_once_arrive_in_fewer_chunks_with_the_same_text(client):
    """The instant echo: tokens made within a few milliseconds share an event, so a chunk."""
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
    assert 1 <= len(pieces) <= 5
    assert pieces[0] == "the"  # the first token goes out at once, alone
    assert "".join(pieces) == "the last user message wins"
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


def test_a_scoped_key_lists_and_answers_only_its_flows(
    live_studio, workspace, owner, echo_model, make_flow
):
    from workspaces.services import KeyScopes, api_key_create

    alpha, _ = make_flow(echo_model, slug="alpha"), make_flow(echo_model, slug="beta")
    scoped = api_key_create(
        workspace=workspace,
        name="alpha only",
        user=owner,
        scopes=KeyScopes(flow_access="run", flow_ids=[alpha.id]),
    )[1]
    client = openai.OpenAI(base_url=f"{live_studio}/v1", api_key=scoped, max_retries=0)

    assert [m.id for m in client.models.list()] == ["alpha"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="beta", messages=CONVERSATION)
    assert Run.objects.count() == 0
    answer = client.chat.completions.create(model="alpha", messages=CONVERSATION)
    assert answer.choices[0].message.content == "the last user message wins"
    assert Run.objects.get().flow == alpha


def test_a_key_without_flow_access_lists_no_models_and_runs_none(
    live_studio, workspace, owner, echo_model, make_flow
):
    from workspaces.services import KeyScopes, api_key_create

    make_flow(echo_model)
    knowledge_only = api_key_create(
        workspace=workspace, name="kb", user=owner, scopes=KeyScopes(knowledge_access="read")
    )[1]
    client = openai.OpenAI(base_url=f"{live_studio}/v1", api_key=knowledge_only, max_retries=0)

    assert list(client.models.list()) == []
    with pytest.raises(openai.PermissionDeniedError, match="no access to flows"):
        client.chat.completions.create(model="assistant", messages=CONVERSATION)
    assert Run.objects.count() == 0
