"""Token events in batches: a node's tokens share log entries, in order, without delaying the
first one, and every token is logged before the node's next event."""

from __future__ import annotations

import asyncio
import time
import uuid

from studio import events


def _stream() -> str:
    return f"test-tokens-{uuid.uuid4()}"


def _texts(logged: list[dict]) -> list[str]:
    return [e["data"]["text"] for e in logged if e["type"] == events.TOKEN]


def test_a_burst_of_tokens_shares_few_entries_and_keeps_their_order():
    stream = _stream()
    words = [f" w{i}" for i in range(1000)]

    async def produce() -> list[dict]:
        tokens = events.TokenBuffer(stream, "llm_1")
        for word in words:
            await tokens.add(word)
        await tokens.flush()
        await events.publish(stream, events.NODE_FINISHED, "llm_1", {})
        return await events.replay(stream)

    logged = asyncio.run(produce())
    texts = _texts(logged)
    assert "".join(texts) == "".join(words)
    assert texts[0] == words[0]  # the first token is an entry of its own, logged at once
    assert len(texts) <= len(words) // events.TOKEN_BATCH_MAX + 2  # full batches, not one each
    assert [e["seq"] for e in logged] == list(range(1, len(logged) + 1))
    assert logged[-1]["type"] == events.NODE_FINISHED
    assert {e["node"] for e in logged} == {"llm_1"}


def test_the_first_token_is_logged_before_add_returns():
    stream = _stream()

    async def first() -> list[dict]:
        tokens = events.TokenBuffer(stream, "llm_1", window_s=60)
        await tokens.add("Hello")
        logged = await events.replay(stream)
        tokens.discard()
        return logged

    assert _texts(asyncio.run(first())) == ["Hello"]


def test_tokens_gathered_in_a_window_are_logged_when_it_closes_without_a_flush():
    stream = _stream()

    async def produce() -> tuple[list[dict], list[dict]]:
        tokens = events.TokenBuffer(stream, "llm_1", window_s=0.05)
        for word in ("a", " b", " c"):
            await tokens.add(word)
        during = await events.replay(stream)
        await asyncio.sleep(0.2)
        return during, await events.replay(stream)

    during, after = asyncio.run(produce())
    assert _texts(during) == ["a"]
    assert _texts(after) == ["a", " b c"]


def test_a_slow_model_gets_one_entry_per_token_each_within_the_window():
    """Tokens further apart than the window each have their entry, at most a window late."""
    stream = _stream()
    window_s = 0.005

    async def produce() -> tuple[list[float], list[dict]]:
        tokens = events.TokenBuffer(stream, "llm_1", window_s=window_s)
        added = []
        for word in ("one", " two", " three"):
            added.append(time.time())
            await tokens.add(word)
            await asyncio.sleep(0.03)
        return added, await events.replay(stream)

    added, logged = asyncio.run(produce())
    assert _texts(logged) == ["one", " two", " three"]
    lags = [e["ts"] - at for e, at in zip(logged, added, strict=True)]
    assert lags[0] < window_s  # the first token: at once
    assert all(lag < 0.025 for lag in lags)  # the others: a window late, give or take the loop


def test_the_node_runner_logs_its_tokens_before_node_finished():
    """``node_execution``'s emitter: tokens then, in order, any other event of the node."""
    from flows.runtime import node_execution

    stream = _stream()

    async def node_run(emit) -> str:
        for i in range(50):
            await emit(events.TOKEN, {"text": f" t{i}"})
        await emit("node.progress", {"step": 1})  # a non-token event flushes first
        for i in range(50, 60):
            await emit(events.TOKEN, {"text": f" t{i}"})
        return "done"

    async def run() -> list[dict]:
        tokens = events.TokenBuffer(stream, "llm_1", window_s=60)

        async def emit(type_: str, data: dict) -> None:
            if type_ == events.TOKEN:
                await tokens.add(data["text"])
                return
            await tokens.flush()
            await events.publish(stream, type_, "llm_1", data)

        assert await node_execution._flushed(node_run(emit), tokens) == "done"
        return await events.replay(stream)

    logged = asyncio.run(run())
    kinds = [e["type"] for e in logged]
    assert kinds == ["token", "token", "node.progress", "token"]
    assert "".join(_texts(logged)) == "".join(f" t{i}" for i in range(60))
    assert _texts(logged)[1].endswith(" t49")
