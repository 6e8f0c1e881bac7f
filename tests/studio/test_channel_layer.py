"""The channel layer on the studio's Redis: a quiet channel (a WebSocket whose run has not said
anything yet, a model still loading) waits without errors past the layer's blocking pop."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer


async def test_a_quiet_channel_waits_without_errors():
    layer = get_channel_layer()
    name = await layer.new_channel()
    # redis-py's default socket timeout (5 s) equals the layer's blocking pop: before the
    # studio set its own, this wait ended in redis.exceptions.TimeoutError.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(name), timeout=layer.brpop_timeout * 2 + 1)
    await layer.send(name, {"type": "still.there"})
    assert (await layer.receive(name))["type"] == "still.there"
