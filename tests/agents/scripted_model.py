"""A scripted model for the agent loop's tests: a local HTTP server speaking OpenAI's streamed
chat completions protocol (the network boundary, played by a real socket), answering each
request with the next planned reply: tool calls (their arguments sent in pieces, as servers
stream them), or a plain answer. The last reply repeats; every request is recorded.

It is the remote-engine tests' server (``tests/catalog/remote_server.py``) with replies made for
agents, reached through the studio's ``openai_compatible`` engine.
"""

from __future__ import annotations

from typing import Any

from catalog.services import model_create
from tests.catalog.remote_server import Received, RemoteServer, Reply, text_events


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-agent",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def calls(*planned: tuple[str, str], usage: tuple[int, int] = (20, 5)) -> Reply:
    """A reply calling tools: each ``(name, raw arguments)``; the arguments arrive in two
    pieces, to be put together by the engine."""
    events: list[Any] = [_chunk({"role": "assistant", "content": None})]
    for index, (name, arguments) in enumerate(planned):
        half = len(arguments) // 2
        events.append(
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": f"call_{index}",
                            "type": "function",
                            "function": {"name": name, "arguments": arguments[:half]},
                        }
                    ]
                }
            )
        )
        events.append(
            _chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]})
        )
    events.append(_chunk({}, "tool_calls"))
    events.append(
        {
            "id": "chatcmpl-agent",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
        }
    )
    return Reply(events=events)


def answer(*pieces: str) -> Reply:
    """A plain streamed answer, one delta per piece."""
    return Reply(events=text_events(*pieces, usage=(30, 0)))


class ScriptedModel(RemoteServer):
    def plan(self, *replies: Reply) -> None:
        self.script(*replies)

    def chats(self) -> list[Received]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def messages(self, index: int) -> list[dict[str, Any]]:
        """The messages of the ``index``-th chat request."""
        return self.chats()[index].json["messages"]


def remote_model(server: ScriptedModel, workspace: Any, owner: Any) -> Any:
    """The workspace's model ``remote``, served by ``server`` (the agents tests' model)."""
    return model_create(
        slug="remote",
        name="Remote",
        engine="openai_compatible",
        weights="served-model",
        settings={"base_url": f"{server.url}/v1", "retries": 0},
        workspace=workspace,
        actor=owner,
    )
