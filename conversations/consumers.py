"""The embed widget's run WebSocket: ``/ws/embed/<embed_id>/runs/<id>/?after=<seq>&token=…``.

The run socket of the chat page (``flows.consumers.RunConsumer``), for a widget's end user: the
widget's token (in the query string: a browser cannot set headers on a WebSocket) instead of
the studio's session, and the handshake's ``Origin`` checked against the flow's allowed web
sites. The token's end user must still reach the run's conversation when the socket opens and
every ``RECHECK_S`` seconds while it streams, so a widget turned off, or a web site removed from
its list, stops its streams within seconds."""

from __future__ import annotations

import asyncio
from functools import partial
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import Http404

from conversations.access import access_widget_flow
from conversations.models import Message, Source
from conversations.origins import origin_of
from conversations.widget_tokens import TokenRefused, WidgetSession, token_read
from flows.consumers import RunConsumer


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class WidgetRunConsumer(RunConsumer):
    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        self.run_id = str(kwargs["run_id"])
        self.embed_id = kwargs["embed_id"]
        query = parse_qs(self.scope.get("query_string", b"").decode())
        await self.accept()
        try:
            self.session: WidgetSession = token_read((query.get("token") or [""])[0])
        except TokenRefused:
            await self.close(code=4401)  # the widget asks for a new token, then reconnects
            return
        host = _header(self.scope, b"host") or ""
        sent = _header(self.scope, b"origin")
        self.origin = None if sent is None else (origin_of(sent) or "null")
        # The studio's own origin, whichever scheme a proxy in front of it speaks.
        own = {origin_of(f"{scheme}://{host}") for scheme in ("http", "https")}
        self.own_origin = self.origin if self.origin in own else origin_of(f"http://{host}") or ""
        if not await self._allowed():
            await self.close(code=4403)
            return
        after = (query.get("after") or ["0"])[0]
        self.follower = asyncio.create_task(self._follow(int(after) if after.isdigit() else 0))

    @partial(database_sync_to_async, thread_sensitive=False)
    def _allowed(self) -> bool:
        try:
            access_widget_flow(
                self.session, self.embed_id, own_origin=self.own_origin, origin=self.origin
            )
        except (Http404, PermissionDenied):
            return False
        return Message.objects.filter(
            run_id=self.run_id,
            conversation__source=Source.WIDGET,
            conversation__flow_id=self.session.flow_id,
            conversation__end_user=self.session.end_user,
        ).exists()
