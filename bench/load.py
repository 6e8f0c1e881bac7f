"""Load as the benchmarks make it: clients sending requests back to back. Free of side effects
(no settings, no var dir), so every benchmark may import it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

C = TypeVar("C")
R = TypeVar("R")


async def back_to_back(
    clients: list[C], once: Callable[[C], Awaitable[R]], runs: int
) -> tuple[list[R], float]:
    """Every client at once, each sending one request after another until ``runs`` are done:
    what each request gave, and the wall time in seconds."""
    remaining = runs
    results: list[R] = []

    async def client_loop(client: C) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            results.append(await once(client))

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(client) for client in clients))
    return results, time.perf_counter() - started
