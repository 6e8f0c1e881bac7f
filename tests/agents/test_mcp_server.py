"""The studio as an MCP server, called by the official SDK's client over streamable HTTP against
the live studio (daphne and a worker): the published flows an API key may run are its tools,
calling one runs the published version, and a key that may not act is refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import httpx2
import pytest
from asgiref.sync import async_to_sync
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from flows.models import Run, RunSource
from workspaces.models import ApiKey
from workspaces.services import api_key_create, api_key_revoke, workspace_create

MESSAGE_SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string", "description": "Message"}},
    "required": ["message"],
    "additionalProperties": False,
}


def _with_session(url: str, key: str, action: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    """``action`` run on an initialised SDK session with the studio at ``url``, keyed by
    ``key``; the client talks to 127.0.0.1 directly (no proxy from the environment)."""

    async def go() -> Any:
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30, trust_env=False) as http,
            streamable_http_client(f"{url}/mcp/", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await action(session)

    return async_to_sync(go)()


def _tool_names(url: str, key: str) -> list[str]:
    async def names(session: ClientSession) -> list[str]:
        return [tool.name for tool in (await session.list_tools()).tools]

    return _with_session(url, key, names)


def _call(url: str, key: str, name: str, arguments: dict[str, Any]):
    """The tool's result, or the SDK's MCPError for a call the server refused."""

    async def call(session: ClientSession):
        try:
            return await session.call_tool(name, arguments)
        except MCPError as exc:
            return exc

    return _with_session(url, key, call)


@pytest.fixture
def studio(live_studio, echo_model, make_flow) -> str:
    """The live studio with acme's published echo flow and an unpublished one."""
    make_flow(echo_model)
    make_flow(echo_model, slug="draft", publish=False)
    return live_studio


pytestmark = pytest.mark.django_db(transaction=True)


def test_tools_are_the_published_flows_with_their_inputs(studio, api_key):
    async def tools(session: ClientSession):
        return (await session.list_tools()).tools

    listed = _with_session(studio, api_key, tools)
    assert [tool.name for tool in listed] == ["assistant"]  # not the unpublished "draft"
    assert listed[0].description == "Assistant"
    assert listed[0].input_schema == MESSAGE_SCHEMA


def test_calling_a_tool_runs_the_published_flow_and_answers_its_output(studio, api_key):
    result = _call(studio, api_key, "assistant", {"message": "hello from an MCP client"})
    assert not result.is_error
    assert result.content[0].text == "hello from an MCP client"
    run = Run.objects.get()
    assert run.source == RunSource.MCP
    assert run.api_key_id == ApiKey.objects.get().id
    assert run.flow_version_id == run.flow.published_version_id
    assert run.usage["output_tokens"] == 5


def test_wrong_inputs_are_a_tool_error_the_caller_can_read(studio, api_key):
    result = _call(studio, api_key, "assistant", {"question": "hi"})
    assert result.is_error
    assert "unknown inputs: question" in result.content[0].text
    assert not Run.objects.exists()


def test_an_unpublished_flow_cannot_be_called(studio, api_key):
    refused = _call(studio, api_key, "draft", {"message": "hi"})
    assert isinstance(refused, MCPError)
    assert str(refused) == "Unknown tool: draft"


def test_a_missing_wrong_or_revoked_key_is_refused(studio, api_key):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    revoked = ApiKey.objects.get()
    api_key_revoke(api_key=revoked)
    for headers in (
        {},
        {"Authorization": "Bearer sk-nope.nope"},
        {"Authorization": f"Bearer {api_key}"},
    ):
        answer = httpx.post(f"{studio}/mcp/", json=body, headers=headers, trust_env=False)
        assert answer.status_code == 401, headers
    with pytest.raises(Exception):  # noqa: B017 - the SDK's own error for a refused session
        _tool_names(studio, api_key)


def test_another_workspaces_key_sees_none_of_its_flows(studio):
    other = workspace_create(slug="elsewhere", name="Elsewhere")
    key = api_key_create(workspace=other, name="other")[1]
    assert _tool_names(studio, key) == []
    refused = _call(studio, key, "assistant", {"message": "hi"})
    assert isinstance(refused, MCPError)
    assert str(refused) == "Unknown tool: assistant"
    assert not Run.objects.exists()


def test_the_endpoint_takes_one_bounded_post(studio, api_key):
    headers = {"Authorization": f"Bearer {api_key}"}
    assert httpx.get(f"{studio}/mcp/", headers=headers, trust_env=False).status_code == 405
    big = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * 1_100_000}}
    answer = httpx.post(f"{studio}/mcp/", json=big, headers=headers, trust_env=False)
    assert answer.status_code == 413
    unknown = {"jsonrpc": "2.0", "id": 7, "method": "prompts/list"}
    answer = httpx.post(f"{studio}/mcp/", json=unknown, headers=headers, trust_env=False)
    assert answer.json() == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": -32601, "message": "Method not found: prompts/list"},
    }
    newer = {**headers, "MCP-Protocol-Version": "2099-01-01"}
    answer = httpx.post(f"{studio}/mcp/", json=unknown, headers=newer, trust_env=False)
    assert answer.status_code == 400


def test_a_failed_run_is_a_tool_error_with_the_reason(live_studio, api_key, make_flow):
    from catalog.services import model_create

    make_flow(model_create(slug="broken", name="Broken", engine="cpu", weights="/nonexistent"))
    result = _call(live_studio, api_key, "assistant", {"message": "hi"})
    assert result.is_error
    assert result.content[0].text.startswith("The flow run failed: node 'llm_1' failed:")
    assert Run.objects.get().status == "failed"
