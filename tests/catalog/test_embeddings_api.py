"""``POST /v1/embeddings``: the official ``openai`` client embeds with the catalog's bundled
MiniLM through the live studio and its worker (floats and base64, one text or many, usage
recorded); refusals (unknown or chat model, another workspace's model, a key without knowledge
access, token ids, empty, too many or too long inputs) are OpenAI errors before anything is
queued."""

from __future__ import annotations

import base64
import json
import math

import openai
import pytest

from catalog.models import Usage
from catalog.services import model_create
from catalog.services.embeddings import MAX_INPUTS
from workspaces.models import ApiKey
from workspaces.services import KeyScopes, api_key_create, workspace_create

URL = "/v1/embeddings"


@pytest.fixture
def reader_key(workspace, owner) -> str:
    """A member's key with knowledge read access only (no flows)."""
    scopes = KeyScopes(knowledge_access="read")
    return api_key_create(workspace=workspace, name="reader", user=owner, scopes=scopes)[1]


@pytest.fixture
def embed_client(live_studio, embedding_model, reader_key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_studio}/v1", api_key=reader_key, max_retries=0)


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def test_one_text_is_embedded_with_the_bundled_model_and_metered(embed_client, embedding_model):
    answer = embed_client.embeddings.create(
        model=embedding_model.slug, input="The cat sat on the mat.", encoding_format="float"
    )
    assert answer.object == "list" and answer.model == embedding_model.slug
    [item] = answer.data
    assert item.index == 0 and item.object == "embedding"
    assert len(item.embedding) == 384
    assert _norm(item.embedding) == pytest.approx(1.0, abs=1e-3)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == 7
    usage = Usage.objects.get()
    assert (usage.source, usage.model, usage.input_tokens, usage.ok) == (
        "api",
        embedding_model,
        7,
        True,
    )
    assert usage.api_key == ApiKey.objects.get(name="reader")


def test_a_list_comes_back_in_order_and_base64_decodes_to_the_same_vectors(
    embed_client, embedding_model
):
    texts = ["cats purr", "stock markets fell", "cats purr"]
    floats = embed_client.embeddings.create(
        model=embedding_model.slug, input=texts, encoding_format="float"
    )
    assert [item.index for item in floats.data] == [0, 1, 2]
    first, other, again = (item.embedding for item in floats.data)
    assert first == again and first != other
    # The client's default asks for base64 and decodes the little-endian float32 itself.
    decoded = embed_client.embeddings.create(model=embedding_model.slug, input=texts)
    for plain, packed in zip(floats.data, decoded.data, strict=True):
        assert packed.embedding == pytest.approx(plain.embedding, abs=1e-6)


def test_base64_is_sent_as_text(client, worker, embedding_model, reader_key):
    response = client.post(
        URL,
        json.dumps({"model": embedding_model.slug, "input": "hi", "encoding_format": "base64"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {reader_key}"},
    )
    assert response.status_code == 200, response.content
    packed = response.json()["data"][0]["embedding"]
    assert isinstance(packed, str) and len(base64.b64decode(packed)) == 384 * 4


def test_an_unknown_model_is_not_found(embed_client):
    with pytest.raises(openai.NotFoundError) as caught:
        embed_client.embeddings.create(model="no-such-model", input="x")
    assert caught.value.code == "model_not_found"
    assert Usage.objects.count() == 0


# --- refusals, answered before anything is queued (no worker needed) ------------------------


def post(client, key: str, body) -> tuple[int, dict]:
    response = client.post(
        URL,
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    return response.status_code, response.json()


def test_a_chat_model_is_refused(client, echo_model, reader_key):
    status, body = post(client, reader_key, {"model": echo_model.slug, "input": "x"})
    assert status == 400 and body["error"]["code"] == "model_not_embedding"


def test_another_workspaces_model_is_not_found(client, reader_key):
    other = workspace_create(slug="other", name="Other")
    model_create(slug="theirs", name="Theirs", task="embedding", engine="echo", workspace=other)
    status, body = post(client, reader_key, {"model": "theirs", "input": "x"})
    assert status == 404 and body["error"]["code"] == "model_not_found"


def test_a_key_without_knowledge_access_is_refused(client, workspace, owner, embedding_model):
    flows_only = api_key_create(
        workspace=workspace, name="flows", user=owner, scopes=KeyScopes(flow_access="run")
    )[1]
    status, body = post(client, flows_only, {"model": embedding_model.slug, "input": "x"})
    assert status == 403 and "knowledge access" in body["error"]["message"]


def test_a_key_whose_creator_may_not_use_the_model_is_refused(
    client, workspace, make_member, embedding_model
):
    limited = make_member("operator", limited=True)
    private = model_create(
        slug="private-embed", name="Private", task="embedding", engine="echo", workspace=workspace
    )
    key = api_key_create(
        workspace=workspace, name="limited", user=limited, scopes=KeyScopes(knowledge_access="read")
    )[1]
    status, body = post(client, key, {"model": private.slug, "input": "x"})
    assert status == 403 and "may not use this model" in body["error"]["message"]


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("", "empty string"),
        ([], "at least one text"),
        (["fine", ""], "input[1] is an empty string"),
        ([[1, 2, 3]], "token-id input"),
        ([1, 2, 3], "token-id input"),
        (["x"] * (MAX_INPUTS + 1), f"at most {MAX_INPUTS}"),
        ("x" * 100_001, "at most 100,000"),
        (["word " * 9000], "tokens; at most 8192"),
        ({"text": "x"}, "input"),
    ],
)
def test_bad_inputs_are_refused_with_the_reason(client, embedding_model, reader_key, given, reason):
    status, body = post(client, reader_key, {"model": embedding_model.slug, "input": given})
    assert status == 400 and reason in body["error"]["message"]
    assert Usage.objects.count() == 0


def test_other_refusals(client, embedding_model, reader_key):
    assert client.get(URL).status_code == 405
    assert client.post(URL, "{}", content_type="application/json").status_code == 401
    status, body = post(client, reader_key, {"model": embedding_model.slug, "input": "x", "n": 2})
    assert status == 400 and "n" in body["error"]["message"]
    status, _ = post(
        client, reader_key, {"model": embedding_model.slug, "input": "x", "encoding_format": "hex"}
    )
    assert status == 400
    body = json.dumps({"model": embedding_model.slug, "input": "x" * 1_100_000})
    response = client.post(
        URL,
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {reader_key}"},
    )
    assert response.status_code == 413
