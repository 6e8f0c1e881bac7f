"""Document status changes of a knowledge base: a short Redis stream that its pages follow.

Ingestion notes each change (claimed, embedding, a batch embedded, ready, failed, queued again)
after the commit that made it. An event says only *which* document changed: a page that hears
one renders its fragment again from the database, so an event can be lost or repeated without
showing a wrong state. A follower starts from the stream's tail as it is *before* it tells the
page to render (``stream.ready``), so a change made while the page renders is still heard; on
a reconnect it does the same, so a dropped connection never hides the final state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import redis
from django.conf import settings
from django.db import transaction

from knowledge.models import IN_PROGRESS, Document
from studio import redis_client

log = logging.getLogger(__name__)

DOCUMENT_CHANGED = "document.changed"
STREAM_READY = "stream.ready"  # render the current state now: events after it are heard
STREAM_END = "stream.end"  # nothing is in progress any more: render once more and stop
MAXLEN = 500  # a follower only reads what comes after it connects: a short tail is enough
FOLLOW_IDLE_S = 5.0


def _key(knowledge_base_id: int) -> str:
    return f"studio:kb:{knowledge_base_id}:documents"


def document_changed(*, document_id: int, knowledge_base_id: int) -> None:
    """Tell the base's pages that a document changed, once the current transaction commits.

    A Redis failure is logged, not raised: the ingestion has done its work, and a page that
    missed the event still ends on the right state (the follower checks the database when idle).
    """

    def send() -> None:
        key = _key(knowledge_base_id)
        try:
            pipe = redis_client.client().pipeline(transaction=False)
            pipe.xadd(key, {"document": document_id}, maxlen=MAXLEN, approximate=True)
            pipe.expire(key, settings.STUDIO_EVENT_LOG_TTL_S)
            pipe.execute()
        except redis.RedisError:
            log.warning("could not note a change of document %s", document_id, exc_info=True)

    transaction.on_commit(send)


async def _tail(key: str) -> bytes:
    last = await redis_client.async_client().xrevrange(key, count=1)
    return last[0][0] if last else b"0-0"


async def _changes(key: str, after: bytes, idle_s: float) -> AsyncIterator[int | None]:
    """The ids of the documents that change after ``after``, as they change; None when idle."""
    client = redis_client.async_client()
    while True:
        batch = await client.xread({key: after}, block=int(idle_s * 1000), count=100)
        if not batch:
            yield None
            continue
        for entry_id, fields in batch[0][1]:
            after = entry_id
            yield int(fields[b"document"])


async def _in_progress(knowledge_base_id: int, document_id: int | None) -> bool:
    documents = Document.objects.filter(knowledge_base_id=knowledge_base_id, status__in=IN_PROGRESS)
    if document_id is not None:
        documents = documents.filter(id=document_id)
    return await documents.aexists()


def _frame(type_: str, data: dict) -> str:
    return f"event: {type_}\ndata: {json.dumps(data)}\n\n"


async def document_frames(
    *, knowledge_base_id: int, document_id: int | None = None, idle_s: float = FOLLOW_IDLE_S
) -> AsyncIterator[str]:
    """SSE frames for a base's page (``document_id`` None) or one document's page: ``stream.ready``,
    then a ``document.changed`` per change, then ``stream.end`` once nothing is in progress."""
    key = _key(knowledge_base_id)
    after = await _tail(key)
    yield _frame(STREAM_READY, {})
    async for changed in _changes(key, after, idle_s):
        if changed is None:
            if not await _in_progress(knowledge_base_id, document_id):
                break
            yield ": keep-alive\n\n"
        elif document_id is None or changed == document_id:
            yield _frame(DOCUMENT_CHANGED, {"document": changed})
    yield _frame(STREAM_END, {})
