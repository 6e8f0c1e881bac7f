"""The queues this worker process consumes.

The executor keeps a node whose queue is among them on the thread that made it ready, instead of
sending it through the broker to a worker of that queue, which would be this one anyway: a run
whose nodes all run here takes one hop, however many nodes it has. A node for a queue this
worker does not serve (a GPU pool) is dispatched as before.
"""

from __future__ import annotations

from typing import Any

_queues: frozenset[str] = frozenset()


def record(instance: Any = None, **_signal: Any) -> None:
    """``celeryd_after_setup``: the queues the worker was started with (``--queues``)."""
    global _queues
    _queues = frozenset(instance.app.amqp.queues.consume_from)


def queues() -> frozenset[str]:
    return _queues
