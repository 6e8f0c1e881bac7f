"""The openai_compatible engine against a real local server that speaks the protocol: streaming,
token counts, credentials, retries, refusals, timeouts, structured output, tools, SSRF checks,
hostile servers that flood, and a flow run through the real worker."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import aclosing

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from pydantic import ValidationError

from catalog.engines import engine_class, openai_compatible
from catalog.engines.base import Adapter, EngineError, EngineSpec, GenerationRequest
from catalog.services import model_create
from catalog.services.credentials import credential_create
from flows.models import RunSource, RunStatus
from flows.services import run_create
from tests.catalog.remote_server import RemoteServer, Reply, text_events
from tests.flows.helpers import logged_events, wait_for_run
from workers.resident import Resident

SECRET = "sk-test-4f9a2c7e1b8d6a3f0e5c"
MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def server():
    remote = RemoteServer().start()
    yield remote
    remote.stop()


@pytest.fixture
def remote(server, settings):
    """The local server, reachable: the studio refuses loopback unless an operator allows it for
    model endpoints."""
    settings.STUDIO_EGRESS_ALLOW_MODELS = ["127.0.0.1"]
    server.script(Reply(events=text_events("Hello", " there")))
    return server


@pytest.fixture
def resident_loop():
    """An event loop running in a background thread, as ``workers/resident.py`` keeps one."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def make_engine(server: RemoteServer, secret: str = SECRET, **settings):
    spec = EngineSpec(
        "openai_compatible",
        "served-model",
        {"base_url": f"{server.url}/v1", **settings},
        secret=secret,
    )
    return engine_class("openai_compatible")(spec)


def collect(engine, request: GenerationRequest | None = None) -> list:
    async def run():
        return [chunk async for chunk in engine.stream(request or GenerationRequest(MESSAGES))]

    return asyncio.run(run())


def collect_until_error(engine, request: GenerationRequest | None = None):
    """The chunks received before the engine raised, and what it raised."""
    received = []

    async def run():
        async for chunk in engine.stream(request or GenerationRequest(MESSAGES)):
            received.append(chunk)

    with pytest.raises(EngineError) as caught:
        asyncio.run(run())
    return received, caught.value


# --- the engine ----------------------------------------------------------------------------


def test_the_engine_is_registered_and_portable():
    cls = engine_class("openai_compatible")
    assert cls.portable and cls.supports_adapters
    assert cls.queue_for({"base_url": "https://x.example/v1"}) == "inference"


def test_text_streams_as_it_arrives_with_the_servers_token_counts(remote):
    remote.script(
        Reply(events=text_events("Par", "is", " is", " lovely", usage=(12, 4)), gap_s=0.2)
    )
    engine = make_engine(remote)
    arrivals: list[float] = []

    async def run():
        chunks = []
        async for chunk in engine.stream(GenerationRequest(MESSAGES, max_tokens=32, top_p=0.9)):
            arrivals.append(time.monotonic())
            chunks.append(chunk)
        return chunks

    chunks = asyncio.run(run())

    assert [c.text for c in chunks[:-1]] == ["Par", "is", " is", " lovely"]
    last = chunks[-1]
    assert (last.text, last.input_tokens, last.output_tokens) == ("", 12, 4)
    assert last.finish_reason == "stop" and last.tool_calls is None
    # Streamed, not buffered: the first piece arrived long before the last.
    assert arrivals[3] - arrivals[0] >= 0.4
    (received,) = remote.requests
    assert received.path == "/v1/chat/completions"
    assert received.json == {
        "model": "served-model",
        "messages": MESSAGES,
        "max_tokens": 32,
        "temperature": 0.0,
        "top_p": 0.9,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_without_usage_from_the_server_tokens_are_estimated(remote):
    remote.script(Reply(events=text_events("a", "b", "c", usage=None, finish="length")))
    last = collect(make_engine(remote))[-1]
    assert last.output_tokens == 3  # one per content delta
    assert last.input_tokens > 0 and last.finish_reason == "length"


def test_the_key_is_a_bearer_token_and_never_in_the_engines_repr(remote):
    engine = make_engine(remote, organization="org-42")
    collect(engine)
    headers = {k.lower(): v for k, v in remote.requests[0].headers.items()}
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert headers["openai-organization"] == "org-42"
    assert SECRET not in repr(engine) and SECRET not in repr(engine.spec)

    remote.script(Reply(events=text_events("ok")))
    collect(make_engine(remote, secret=""))
    assert "authorization" not in {k.lower() for k in remote.requests[0].headers}


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_and_rate_limits_are_retried_until_an_answer(remote, status):
    remote.script(
        Reply(status=status, body='{"error": {"message": "busy"}}'),
        Reply(events=text_events("fine")),
    )
    chunks = collect(make_engine(remote, retries=2))
    assert "".join(c.text for c in chunks) == "fine"
    assert len(remote.requests) == 2


def test_a_connection_error_is_retried(remote):
    # The first answer drops the connection before any content: nothing was shown yet.
    remote.script(Reply(events=[], cut=True), Reply(events=text_events("again")))
    assert "".join(c.text for c in collect(make_engine(remote, retries=1))) == "again"
    assert len(remote.requests) == 2


def test_retries_end_with_the_servers_last_answer(remote):
    remote.script(Reply(status=502, body='{"message": "bad gateway upstream"}'))
    _, error = collect_until_error(make_engine(remote, retries=2))
    assert len(remote.requests) == 3
    assert "502" in str(error) and "bad gateway upstream" in str(error)
    assert "3 attempts" in str(error)


def test_a_retry_after_header_is_honoured(remote):
    remote.script(
        Reply(status=429, body="{}", headers={"Retry-After": "0.6"}),
        Reply(events=text_events("ok")),
    )
    started = time.monotonic()
    collect(make_engine(remote, retries=1))
    assert time.monotonic() - started >= 0.6


def test_nothing_is_retried_once_output_started(remote):
    remote.script(
        Reply(events=text_events("Hello", " wor")[:3], cut=True),
        Reply(events=text_events("a second answer")),
    )
    received, error = collect_until_error(make_engine(remote, retries=3))
    assert [c.text for c in received] == ["Hello", " wor"]
    assert len(remote.requests) == 1
    assert "broke off" in str(error)


def test_a_stream_that_stalls_after_output_times_out(remote):
    # The first event carries content, then the server goes quiet for longer than the timeout.
    first = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "slow"}}]}
    remote.script(Reply(events=[first, *text_events(" answer")[1:]], gap_s=1.0))
    received, error = collect_until_error(make_engine(remote, timeout_s=0.4, retries=3))
    assert [c.text for c in received] == ["slow"]
    assert "cut off" in str(error) and len(remote.requests) == 1


def test_a_caller_that_stops_reading_closes_the_connection(remote, resident_loop):
    """A route that gives up on a slow model (or a client that goes away) must not leave the
    remote server generating into an open connection."""
    pieces = [f" word{i}" for i in range(20)]
    remote.script(Reply(events=text_events(*pieces), gap_s=0.1))
    engine = make_engine(remote)

    async def first_piece() -> str:
        async with aclosing(engine.stream(GenerationRequest(MESSAGES))) as chunks:
            async for chunk in chunks:
                if chunk.text:
                    return chunk.text
        return ""

    assert asyncio.run_coroutine_threadsafe(first_piece(), resident_loop).result(5) == " word0"
    port = remote.requests[0].port
    deadline = time.monotonic() + 1.5  # the whole answer would take 2 s
    while port not in remote.closed_ports and time.monotonic() < deadline:
        time.sleep(0.02)
    assert port in remote.closed_ports


def test_a_refused_request_fails_at_once_and_never_shows_the_key(remote):
    body = json.dumps(
        {"error": {"message": f"Incorrect API key provided: {SECRET}.", "type": "invalid"}}
    )
    remote.script(Reply(status=401, body=body))
    _, error = collect_until_error(make_engine(remote, retries=3))
    assert len(remote.requests) == 1  # a 4xx is not retried
    assert "401" in str(error) and "Incorrect API key provided" in str(error)
    assert SECRET not in str(error)


def test_a_long_error_message_is_truncated(remote):
    remote.script(Reply(status=400, body=json.dumps({"detail": "x" * 5000})))
    _, error = collect_until_error(make_engine(remote))
    assert "400" in str(error) and len(str(error)) < 400


def test_a_slow_server_times_out(remote):
    remote.script(Reply(delay_s=2.0, events=text_events("too late")))
    started = time.monotonic()
    _, error = collect_until_error(make_engine(remote, timeout_s=0.3, retries=1))
    assert "timed out after 0.3 s" in str(error) and "2 attempts" in str(error)
    assert time.monotonic() - started < 1.8
    assert len(remote.requests) == 2


def test_an_error_event_mid_stream_fails_the_answer(remote):
    events = text_events("Hi")[:2] + [{"error": {"message": "the engine died", "code": 500}}]
    remote.script(Reply(events=events))
    received, error = collect_until_error(make_engine(remote))
    assert [c.text for c in received] == ["Hi"] and "the engine died" in str(error)


def test_a_stream_without_an_end_fails(remote):
    remote.script(Reply(events=text_events("Hi")[:2], done=False))
    _, error = collect_until_error(make_engine(remote, retries=0))
    assert "ended before the answer was complete" in str(error)


def test_structured_output_and_tools_are_sent_and_tool_calls_put_together(remote):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]

    def delta(*tool_calls: dict) -> dict:
        return {"choices": [{"index": 0, "delta": {"tool_calls": list(tool_calls)}}]}

    def call_start(index: int, id_: str, name: str, arguments: str) -> dict:
        function = {"name": name, "arguments": arguments}
        return {"index": index, "id": id_, "type": "function", "function": function}

    # The arguments of call 0 arrive in pieces, with call 1 in between.
    events = [
        delta(call_start(0, "call_1", "get_weather", "")),
        delta({"index": 0, "function": {"arguments": '{"city": '}}),
        delta(call_start(1, "call_2", "get_time", "{}")),
        delta({"index": 0, "function": {"arguments": '"Paris"}'}}),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 9}},
    ]
    remote.script(Reply(events=events))

    chunks = collect(
        make_engine(remote), GenerationRequest(MESSAGES, json_schema=schema, tools=tools)
    )

    body = remote.requests[0].json
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }
    assert body["tools"] == tools
    last = chunks[-1]
    assert last.tool_calls == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert (last.finish_reason, last.input_tokens, last.output_tokens) == ("tool_calls", 40, 9)


def test_a_lora_adapter_is_asked_for_by_its_name(remote):
    adapter = Adapter(id=3, name="support-tone", weights="/adapters/support")
    collect(make_engine(remote), GenerationRequest(MESSAGES, adapter=adapter))
    assert remote.requests[0].json["model"] == "support-tone"


def test_loopback_is_refused_unless_an_operator_allows_it(server, settings):
    settings.STUDIO_EGRESS_ALLOW = []
    server.script(Reply(events=text_events("never")))
    _, error = collect_until_error(make_engine(server, retries=3))
    assert "does not call" in str(error) and "STUDIO_EGRESS_ALLOW_MODELS" in str(error)
    assert server.requests == []


def test_a_network_trusted_only_for_what_members_fetch_is_refused_for_models(server, settings):
    """An operator who opens a network to HTTP nodes has not opened it to model endpoints."""
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1"]
    server.script(Reply(events=text_events("never")))
    _, error = collect_until_error(make_engine(server, retries=3))
    assert "does not call" in str(error) and "STUDIO_EGRESS_ALLOW_MODELS" in str(error)
    assert server.requests == []
    settings.STUDIO_EGRESS_ALLOW_MODELS = ["127.0.0.1"]
    assert "".join(c.text for c in collect(make_engine(server))) == "never"


# --- hostile servers: what one sends is bounded ----------------------------------------------


def test_a_line_that_never_ends_fails_the_answer(remote):
    remote.script(Reply(events=text_events("Hi")[:2], flood="x" * 65_536))
    started = time.monotonic()
    received, error = collect_until_error(make_engine(remote, retries=3))
    assert [c.text for c in received] == ["Hi"]
    assert f"a line longer than {openai_compatible.SSE_EVENT_LIMIT:,} characters" in str(error)
    assert len(remote.requests) == 1 and time.monotonic() - started < 10


def test_an_event_that_never_ends_fails_the_answer(remote):
    remote.script(Reply(flood="data: " + "x" * 1000 + "\n"))  # data lines, never a blank one
    _, error = collect_until_error(make_engine(remote, retries=3))
    assert f"an event longer than {openai_compatible.SSE_EVENT_LIMIT:,}" in str(error)
    assert len(remote.requests) == 1


def test_a_stream_that_never_ends_is_cut_off(remote):
    big = {"choices": [{"index": 0, "delta": {"content": "y" * 1_000_000}}]}
    remote.script(Reply(flood=f"data: {json.dumps(big)}\n\n"))
    received, error = collect_until_error(make_engine(remote, retries=3))
    limit = openai_compatible.STREAM_LIMIT
    assert f"larger than {limit:,} bytes" in str(error)
    assert 0 < sum(len(c.text) for c in received) <= limit


def test_an_endless_embeddings_answer_is_cut_off(remote):
    remote.script(Reply(flood="[0.5, " * 10_000))
    with pytest.raises(EngineError) as caught:
        asyncio.run(make_engine(remote, retries=3).embed(["a"]))
    assert f"larger than {openai_compatible.JSON_BODY_LIMIT:,} bytes" in str(caught.value)
    assert len(remote.requests) == 1


def test_an_answer_announced_too_large_is_refused_before_it_is_read(remote):
    remote.script(Reply(flood="[0.5, " * 10_000, announce=10**12))
    started = time.monotonic()
    with pytest.raises(EngineError, match="larger than"):
        asyncio.run(make_engine(remote, retries=3).rerank("q", ["a"]))
    assert time.monotonic() - started < 2


def test_a_long_error_event_is_truncated_without_showing_part_of_the_key(remote):
    message = "x" * (openai_compatible.ERROR_MESSAGE_CHARS - 10) + f" {SECRET} " + "y" * 5000
    events = text_events("Hi")[:2] + [{"error": {"message": message}}]
    remote.script(Reply(events=events))
    _, error = collect_until_error(make_engine(remote))
    assert len(str(error)) < 500
    assert SECRET[:8] not in str(error)


def test_settings_are_checked_and_defaults_come_from_the_studio(settings):
    settings.STUDIO_REMOTE_TIMEOUT_S = 12.5
    settings.STUDIO_REMOTE_RETRIES = 4
    cls = engine_class("openai_compatible")
    engine = cls(EngineSpec("openai_compatible", "m", {"base_url": "https://api.example.com/v1/"}))
    assert (engine.timeout_s, engine.retries) == (12.5, 4)
    assert engine.url == "https://api.example.com/v1/chat/completions"
    # Defaults are not stored, so an operator's later change reaches existing entries.
    stored = cls.Settings.model_validate({"base_url": "https://api.example.com/v1"})
    assert stored.model_dump(exclude_defaults=True) == {"base_url": "https://api.example.com/v1"}
    for bad in (
        {},
        {"base_url": "ftp://files.example.com"},
        {"base_url": "https://user:pass@api.example.com/v1"},
        {"base_url": "api.example.com"},
        {"base_url": "https://api.example.com", "timeout_s": 0},
        {"base_url": "https://api.example.com", "retries": -1},
        {"base_url": "https://api.example.com", "headers": {"X-Key": "1"}},
    ):
        with pytest.raises(ValidationError):
            cls(EngineSpec("openai_compatible", "m", bad))


def test_one_connection_serves_every_request_until_the_engine_is_closed(remote, resident_loop):
    """As in a worker: the engine lives on a background loop and is closed from another thread
    (the resident loader's)."""
    engine = make_engine(remote)

    async def answer() -> str:
        return (await engine.generate(GenerationRequest(MESSAGES))).text

    for _ in range(3):
        assert asyncio.run_coroutine_threadsafe(answer(), resident_loop).result(10) == "Hello there"
    ports = {r.port for r in remote.requests}
    assert len(remote.requests) == 3 and len(ports) == 1  # kept alive and reused
    assert not ports & set(remote.closed_ports)

    engine.close()

    deadline = time.monotonic() + 5
    while not ports <= set(remote.closed_ports) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ports <= set(remote.closed_ports)


def test_the_worker_runtime_sends_the_decrypted_credential(
    transactional_db, remote, workspace, owner
):
    credential = credential_create(workspace=workspace, name="Remote", secret=SECRET, actor=owner)
    model = model_create(
        slug="remote",
        name="Remote",
        engine="openai_compatible",
        weights="served-model",
        settings={"base_url": f"{remote.url}/v1"},
        workspace=workspace,
        credential=credential,
        actor=owner,
    )

    async def answer() -> str:
        try:
            engine = await Resident().engine_for(model)
            return (await engine.generate(GenerationRequest(MESSAGES))).text
        finally:
            # The async ORM's thread keeps its connection, which would hold the test database.
            await sync_to_async(connections.close_all)()

    assert asyncio.run(answer()) == "Hello there"
    headers = {k.lower(): v for k, v in remote.requests[0].headers.items()}
    assert headers["authorization"] == f"Bearer {SECRET}"


# --- through the worker --------------------------------------------------------------------


@pytest.fixture
def remote_worker(worker_may_call_loopback, worker):
    return worker


@pytest.fixture
def remote_model(transactional_db, remote, workspace, owner):
    credential = credential_create(workspace=workspace, name="Remote", secret=SECRET, actor=owner)
    return model_create(
        slug="remote",
        name="Remote",
        engine="openai_compatible",
        weights="served-model",
        settings={"base_url": f"{remote.url}/v1", "retries": 1},
        workspace=workspace,
        credential=credential,
        actor=owner,
    )


def test_a_flow_streams_a_remote_models_answer_through_the_worker(
    remote_worker, remote, remote_model, make_flow
):
    # 30 ms between tokens, as a model makes them: each is logged as its own event (tokens
    # that come within a few milliseconds share one: tests/studio/test_token_buffer.py).
    remote.script(
        Reply(events=text_events("Paris", " is", " the", " capital.", usage=(21, 4)), gap_s=0.03)
    )
    flow = make_flow(remote_model)

    run = wait_for_run(
        run_create(
            flow=flow,
            version=flow.published_version,
            inputs={"message": "What is the capital of France?"},
            source=RunSource.STUDIO,
        ).id
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "Paris is the capital."}
    assert run.usage["input_tokens"] == 21 and run.usage["output_tokens"] == 4
    tokens = [e["data"]["text"] for e in logged_events(run.id) if e["type"] == "token"]
    assert tokens == ["Paris", " is", " the", " capital."]
    (received,) = remote.requests
    assert received.headers["Authorization"] == f"Bearer {SECRET}"
    assert received.json["model"] == "served-model"
    assert received.json["messages"][-1] == {
        "role": "user",
        "content": "What is the capital of France?",
    }


def test_a_refused_remote_call_fails_the_run_without_leaking_the_key(
    remote_worker, remote, remote_model, make_flow
):
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {SECRET}"}})
    remote.script(Reply(status=401, body=body))
    flow = make_flow(remote_model)

    run = wait_for_run(
        run_create(
            flow=flow,
            version=flow.published_version,
            inputs={"message": "hello"},
            source=RunSource.STUDIO,
        ).id
    )

    assert run.status == RunStatus.FAILED
    assert "401" in run.error and "Incorrect API key provided" in run.error
    assert SECRET not in run.error
    assert SECRET not in json.dumps(logged_events(run.id))
    assert SECRET not in remote_worker.log()
