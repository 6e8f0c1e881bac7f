"""The run WebSocket: ``/ws/runs/<id>/?after=<seq>`` replays what the client missed, then follows.

The socket listens on its user's access group (``workspaces.notify``): a role change, a revoked
grant or a deactivation makes it re-check at once, streaming or quiet. Between notices a
streaming socket re-checks its run every ``RECHECK_S`` seconds rather than before every event:
a check per token would cap one process at a few dozen streams (``bench/streaming.py``).
Checks run on a thread of their own, not on the one thread the process's other database work
queues on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.http import Http404

from flows.access import access_run
from flows.runtime.waiting import run_batches
from workspaces import notify

logger = logging.getLogger(__name__)


class RunConsumer(AsyncJsonWebsocketConsumer):
    # Between access notices, a streaming socket re-checks its run at most this often.
    RECHECK_S = 10.0
    # Events in one message, at most: a client far behind catches up in frames of a sane size.
    FRAME_EVENTS_MAX = 256

    async def connect(self) -> None:
        self.user = self.scope["user"]
        self.run_id = str(self.scope["url_route"]["kwargs"]["run_id"])
        # Accept, then close with 4403: a refusal before accepting reaches a browser as a bare
        # 1006, which it cannot tell from a dropped connection worth retrying.
        await self.accept()
        if not await self._allowed():
            await self.close(code=4403)
            return
        self.access_group = notify.user_group(self.user.pk)
        await self.channel_layer.group_add(self.access_group, self.channel_name)
        after = _int(self.scope.get("query_string", b"").decode(), "after")
        self.follower = asyncio.create_task(self._follow(after))

    async def disconnect(self, code: int) -> None:
        if group := getattr(self, "access_group", None):
            await self.channel_layer.group_discard(group, self.channel_name)
        follower = getattr(self, "follower", None)
        if follower:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def receive_json(self, content, **kwargs) -> None:
        # The socket is read-only (runs start over HTTP), but a message is still checked.
        if not await self._allowed():
            await self.close(code=4403)

    async def access_changed(self, message: dict) -> None:
        if not await self._allowed():
            await self.close(code=4403)

    @partial(database_sync_to_async, thread_sensitive=False)
    def _allowed(self) -> bool:
        try:
            access_run(self.user, self.run_id, "view")
        except (Http404, PermissionDenied):
            return False
        return True

    async def _follow(self, after: int) -> None:
        checked = time.monotonic()
        # ``?batch=1``: the client takes a JSON array of the events that were ready together.
        batched = _int(self.scope.get("query_string", b"").decode(), "batch") == 1
        try:
            async for batch in run_batches(self.run_id, after):
                if time.monotonic() - checked >= self.RECHECK_S:
                    if not await self._allowed():
                        await self.close(code=4403)
                        return
                    checked = time.monotonic()
                if batch is None:
                    continue
                # Each event's JSON as stored, not decoded and encoded again (send_json).
                if not batched:
                    for entry in batch:
                        await self.send(text_data=entry.frame)
                    continue
                for start in range(0, len(batch), self.FRAME_EVENTS_MAX):
                    part = batch[start : start + self.FRAME_EVENTS_MAX]
                    await self.send(text_data=f"[{','.join(entry.frame for entry in part)}]")
        except Exception as exc:
            # The client left while an event was on its way (daphne's ``Disconnected``): the
            # disconnect that follows ends this task. Anything else is a fault, not a silent
            # socket: the client reconnects from its last event.
            if type(exc).__name__ != "Disconnected":
                logger.exception("following run %s failed", self.run_id)
                await self.close(code=1011)
            return
        await self.close()  # the run has ended: nothing more will come


def _int(query: str, name: str) -> int:
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == name and value.isdigit():
            return int(value)
    return 0
