"""Enqueueing the executor's tasks, by name (the tasks live in ``workers/tasks.py``), and
telling which of them the broker still holds."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from studio.celery import app

ADVANCE_RUN = "workers.tasks.advance_run"
EXECUTE_NODE = "workers.tasks.execute_node"

# A queue longer than this is not read through: its tasks count as held (a long queue is busy,
# and a lost task is found once it drains).
READ_AT_MOST = 10_000

Task = tuple[str, tuple[str, ...]]


def advance(run_id: Any) -> None:
    app.send_task(ADVANCE_RUN, args=[str(run_id)])


def execute(run_id: Any, node_id: str, queue: str, countdown: float = 0) -> None:
    """Execute a node (or an instance of one, ``llm_1[3]``) on its queue, after ``countdown``
    seconds (a retry's backoff)."""
    options = {"countdown": countdown} if countdown else {}
    app.send_task(EXECUTE_NODE, args=[str(run_id), node_id], queue=queue, **options)


def advance_queue() -> str:
    """The queue the executor's own task is routed to (``workers/queues.py``)."""
    return app.amqp.router.route({}, ADVANCE_RUN)["queue"].name


@dataclass(frozen=True)
class Held:
    """The tasks the broker holds now: waiting in their queues' lists (``queued``, None for a
    queue too long to read), or taken by a worker that has not started them (``reserved``)."""

    queued: dict[str, set[Task] | None]
    reserved: set[Task]

    def waiting(self, queue: str, task: Task) -> bool:
        listed = self.queued[queue]
        return listed is None or task in listed


def held(queues: Iterable[str]) -> Held:
    """What kombu's Redis transport holds for ``queues``: one list per queue and priority
    (``LPUSH``ed, ``BRPOP``ped by workers), and the ``unacked`` hash of messages a worker took
    but has not acknowledged (its prefetched tasks: ``CELERY_TASK_ACKS_LATE`` is off, so a task
    is acknowledged as it starts). A killed worker's entries stay in that hash until the
    visibility timeout (an hour) restores them, so ``reserved`` cannot tell a live worker's
    from a dead one's."""
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        client = channel.client
        queued: dict[str, set[Task] | None] = {}
        for queue in set(queues):
            lists = [channel._q_for_pri(queue, pri) for pri in channel.priority_steps]
            if sum(client.llen(name) for name in lists) > READ_AT_MOST:
                queued[queue] = None
                continue
            raw = [m for name in lists for m in client.lrange(name, 0, READ_AT_MOST)]
            queued[queue] = {t for t in map(_task_of, raw) if t is not None}
        reserved: set[Task] = set()
        for entry in client.hvals(channel.unacked_key):
            try:
                task = _task_of(json.loads(entry)[0])
            except (ValueError, TypeError, IndexError):
                task = None
            if task is not None:
                reserved.add(task)
    return Held(queued, reserved)


def _task_of(message: Any) -> Task | None:
    """A Celery (protocol 2) message's task name and positional arguments; None if it is not
    one of the executor's."""
    try:
        payload = json.loads(message) if isinstance(message, str | bytes) else message
        name = payload["headers"]["task"]
        if name not in (ADVANCE_RUN, EXECUTE_NODE):
            return None
        args = json.loads(base64.b64decode(payload["body"]))[0]
        return name, tuple(str(a) for a in args)
    except (ValueError, TypeError, KeyError, IndexError):
        return None
