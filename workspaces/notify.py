"""Tell a user's open WebSockets that their access changed, so that each re-checks at once.

Every consumer joins ``user_group(user_id)``; services call ``access_changed`` after a role
change, a removal, a revoked grant or a deactivation. The consumer re-checks through the access
layer and closes if it no longer may; a quiet stream stops as promptly as a busy one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)

ACCESS_CHANGED = "access.changed"


def user_group(user_id: int) -> str:
    return f"access.user.{user_id}"


def access_changed(user_ids: Iterable[int]) -> None:
    """After the current transaction commits, ask the users' sockets to re-check."""
    ids = sorted(set(user_ids))
    if ids:
        transaction.on_commit(lambda: _send(ids))


def _send(user_ids: list[int]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all() -> None:
        for user_id in user_ids:
            await layer.group_send(user_group(user_id), {"type": "access.changed"})

    try:
        async_to_sync(send_all)()
    except Exception:  # the change is committed; sockets still re-check on their next event
        log.exception("could not notify sockets of users %s", user_ids)
