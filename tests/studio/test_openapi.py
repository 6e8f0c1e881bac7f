"""The public API's OpenAPI document and its interactive reference.

The document is valid OpenAPI 3.1, public, names nothing of any workspace, and lists every
route under ``/api/v1/`` and ``/v1/`` with exactly the methods its view answers (read from the
URL resolver and from the views' own 405s, so a new API route without a declaration fails
here). The answer models match what the views answer. Schemathesis, driven by the served
document with a real key against the live studio, finds no 5xx.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.urls.converters import IntConverter, UUIDConverter
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from studio import openapi

SCHEMA_URL = "/api/v1/schema/"
DOCS_URL = "/api/v1/docs/"
MARKER = "zq7secret"
VENDORED = (
    "vendor/swagger-ui/swagger-ui-bundle.js",
    "vendor/swagger-ui/swagger-ui.css",
    "vendor/swagger-ui/LICENSE",
    "vendor/swagger-ui/NOTICE",
    "vendor/swagger-ui/VERSION",
    "studio/api_docs.js",
)


def _sample(converter) -> str:
    if isinstance(converter, IntConverter):
        return "1"
    if isinstance(converter, UUIDConverter):
        return str(uuid.uuid4())
    return "x"


def _url(route: openapi.Route) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _sample(route.converters[m.group(1)]), route.path)


def test_the_schema_is_public_and_valid_openapi_3_1(client):
    response = client.get(SCHEMA_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    document = response.json()
    assert document["openapi"] == "3.1.0"
    validate(document)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["security"] == [{"bearer": []}]
    assert document["paths"][SCHEMA_URL]["get"]["security"] == []


def test_every_api_route_is_declared_with_exactly_the_methods_it_answers(client, db):
    document = client.get(SCHEMA_URL).json()
    routes = openapi.api_routes()
    assert {"/v1/embeddings", "/v1/chat/completions", "/api/v1/runs/{run_id}"} <= {
        r.path for r in routes
    }
    assert openapi.undeclared_routes() == []
    for route in routes:
        declared = {method.upper() for method in document["paths"][route.path]}
        # The views' own method checks answer a method they do not take with 405 and Allow.
        refused = client.generic("PROPFIND", _url(route))
        assert refused.status_code == 405, route.path
        answered = {m.strip() for m in refused["Allow"].split(",")}
        assert declared == answered, route.path


def test_the_schema_declares_errors_pagination_streams_and_idempotency(client):
    paths = client.get(SCHEMA_URL).json()["paths"]
    start = paths["/api/v1/flows/{slug}/runs"]["post"]
    assert "text/event-stream" in start["responses"]["200"]["content"]
    assert "Idempotency-Key" in {p["name"] for p in start["parameters"]}
    assert {"400", "401", "403", "404", "413", "422"} <= set(start["responses"])
    error = start["responses"]["404"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorBody"}
    for path in (
        "/api/v1/knowledge/{kb_slug}/documents",
        "/api/v1/flows/{slug}/conversations",
        "/api/v1/conversations/{conversation_id}/messages",
        "/v1/models",
    ):
        names = {p["name"] for p in paths[path]["get"]["parameters"]}
        assert {"page", "per_page"} <= names, path
    embeddings = paths["/v1/embeddings"]["post"]
    assert "knowledge access" in embeddings["description"]


def test_the_schema_names_nothing_of_a_workspace(client, workspace, owner, echo_model, make_flow):
    from catalog.services import model_create
    from knowledge.services.bases import BaseSettings, kb_create
    from workspaces.services import api_key_create

    make_flow(echo_model, slug=f"{MARKER}-flow")
    embedder = model_create(
        slug=f"{MARKER}-embed", name=MARKER, task="embedding", engine="echo", workspace=workspace
    )
    kb_create(
        workspace=workspace,
        slug=f"{MARKER}-kb",
        values=BaseSettings(name=f"{MARKER} base", embedding_model=embedder),
        actor=owner,
    )
    api_key_create(workspace=workspace, name=f"{MARKER} key", user=owner)
    openapi.document.cache_clear()
    text = client.get(SCHEMA_URL).content.decode()
    assert MARKER not in text
    assert workspace.slug not in text and owner.username not in text


@pytest.mark.parametrize("url", [SCHEMA_URL, DOCS_URL])
def test_the_schema_and_the_docs_take_only_get(client, url):
    assert client.post(url).status_code == 405
    assert client.delete(url).status_code == 405


def test_the_docs_page_loads_its_vendored_assets_without_inline_script(client):
    response = client.get(DOCS_URL)
    assert response.status_code == 200
    html = response.content.decode()
    for asset in VENDORED[:2] + VENDORED[-1:]:
        assert f"/static/{asset}" in html
    assert f'data-schema-url="{SCHEMA_URL}"' in html
    # The policy runs no inline script: every <script> of the page names its file.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "script-src 'self'" in response["Content-Security-Policy"]
    for asset in VENDORED:
        assert finders.find(asset), asset
    assert "//# sourceMappingURL" not in open(finders.find(VENDORED[1])).read()


def test_a_nul_character_is_refused_before_the_database(
    client, workspace, owner, api_key, echo_model, make_flow
):
    """Found by the fuzzing below: PostgreSQL's text holds no NUL, so saving one was a 500."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.services import model_create
    from knowledge.services.bases import BaseSettings, kb_create

    make_flow(echo_model)
    auth = {"Authorization": f"Bearer {api_key}"}
    url = "/api/v1/flows/assistant/conversations"
    body = '{"user": "a\\u0000b"}'
    refused = client.post(url, body, content_type="application/json", headers=auth)
    assert refused.status_code == 400 and "NUL" in refused.json()["error"]["message"]
    literal = client.post(
        url, '{"user": "a\\\\u0000b"}', content_type="application/json", headers=auth
    )
    assert literal.status_code == 201 and literal.json()["user"] == "a\\u0000b"
    listed = client.get(url, {"user": "a\x00b"}, headers=auth)
    assert listed.status_code == 400
    embedder = model_create(
        slug="echo-embed", name="Echo embed", task="embedding", engine="echo", workspace=workspace
    )
    kb_create(
        workspace=workspace,
        slug="docs",
        values=BaseSettings(name="Docs", embedding_model=embedder),
        actor=owner,
    )
    upload = SimpleUploadedFile("a.txt", b"text", content_type="text/plain")
    data = {"file": upload, "metadata": '{"k": "\\u0000"}'}
    refused = client.post("/api/v1/knowledge/docs/documents", data, headers=auth)
    assert refused.status_code == 400 and "NUL" in refused.json()["error"]["message"]


# --- the answers are what the schema says ---------------------------------------------------


def _fields(model) -> set[str]:
    return set(model.model_fields)


def test_the_answer_models_hold_exactly_what_the_views_answer(
    workspace, owner, echo_model, make_flow
):
    from conversations.api import ConversationOut, MessageOut, conversation_data, message_data
    from conversations.services import conversation_start, message_send
    from flows.api import RunOut
    from flows.models import RunSource
    from flows.runtime.waiting import run_payload
    from flows.services import run_create
    from workspaces.services import api_key_create

    flow = make_flow(echo_model)
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "hi"},
        source=RunSource.STUDIO,
        user=owner,
    )
    payload = run_payload(run)
    assert set(payload) == _fields(RunOut)
    RunOut.model_validate(payload)

    key, _ = api_key_create(workspace=workspace, name="drift")
    conversation = conversation_start(flow=flow, api_key=key, end_user="u1")
    data = conversation_data(conversation)
    assert set(data) <= _fields(ConversationOut)
    ConversationOut.model_validate(data)
    exchange = message_send(
        conversation=conversation, text="hello", source=RunSource.API, api_key=key
    )
    for message in (exchange.question, exchange.answer):
        data = message_data(message)
        assert set(data) == _fields(MessageOut)
        MessageOut.model_validate(data)


# --- schemathesis against the live studio ---------------------------------------------------


@pytest.fixture
def real_objects(live_studio, workspace, owner, echo_model, make_flow):
    """A published flow, a run, a conversation with an answer, an embedding model and a
    knowledge base with a document, so that generated requests can name real objects."""
    from catalog.services import model_create
    from conversations.services import conversation_start, message_send
    from flows.models import RunSource
    from flows.services import run_create
    from knowledge.models import Document
    from knowledge.services.bases import BaseSettings, kb_create
    from workspaces.services import api_key_create

    flow = make_flow(echo_model)
    embedder = model_create(
        slug="echo-embed", name="Echo embed", task="embedding", engine="echo", workspace=workspace
    )
    base = kb_create(
        workspace=workspace,
        slug="docs",
        values=BaseSettings(name="Docs", embedding_model=embedder),
        actor=owner,
    )
    document = Document.objects.create(knowledge_base=base, name="a.txt", source="text")
    key_row, key = api_key_create(workspace=workspace, name="fuzz")
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "hi"},
        source=RunSource.API,
        api_key=key_row,
    )
    conversation = conversation_start(flow=flow, api_key=key_row, end_user="u1")
    exchange = message_send(
        conversation=conversation, text="hello", source=RunSource.API, api_key=key_row
    )
    return {
        "key": key,
        "path": {
            "slug": flow.slug,
            "kb_slug": base.slug,
            "document_id": document.id,
            "run_id": str(run.id),
            "conversation_id": str(conversation.id),
            "message_id": exchange.answer.id,
        },
    }


# No 5xx, and every JSON answer (and each streamed event) is what the document says it is.
CHECKS = [not_a_server_error, response_schema_conformance]
# Small enough for the whole fuzzing to stay well under a minute on two cores.
FUZZ = settings(
    max_examples=6,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def test_schemathesis_finds_no_server_error(live_studio, real_objects):
    schema = schemathesis.openapi.from_url(f"{live_studio}{SCHEMA_URL}")
    auth = {"Authorization": f"Bearer {real_objects['key']}"}
    failures: list[str] = []
    calls: list[int] = []
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p.name for p in operation.path_parameters}
        real = {k: v for k, v in real_objects["path"].items() if k in names}
        strategies = [operation.as_strategy(headers=auth)]
        if real:  # the same operation on objects that exist, so the view goes past its 404
            strategies.append(operation.as_strategy(headers=auth, path_parameters=real))
        strategies.append(
            operation.as_strategy(
                GenerationMode.NEGATIVE, headers=auth, path_parameters=real or None
            )
        )
        for strategy in strategies:

            @FUZZ
            @given(case=strategy)
            def fuzz(case) -> None:
                response = case.call(base_url=live_studio, timeout=30)
                calls.append(response.status_code)
                try:
                    case.validate_response(response, checks=CHECKS)
                except (Failure, FailureGroup) as exc:
                    failures.append(f"{case.method} {case.formatted_path}: {exc}")

            try:
                fuzz()
            except Unsatisfiable:  # nothing to make invalid (an operation without inputs)
                continue
    assert failures == [], "\n".join(failures)
    assert len(calls) > 100 and 200 in calls and 404 in calls and 400 in calls
    assert time.monotonic() - started < 120
