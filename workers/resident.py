"""Engines kept loaded per worker process, and the event loop they run on.

Each worker process has one background event loop. Celery task threads hand node coroutines to
it (``submit``), so concurrent tasks feed the same engine instance: what continuous batching
engines (vLLM) need, and what keeps the CPU model loaded once per process, never per request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable
from typing import Any

from catalog.engines import engine_class
from catalog.engines.base import TORCH_LOADS, Engine, EngineSpec
from catalog.selectors.models import acredential_secret, engine_spec

log = logging.getLogger(__name__)


class Resident:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self._engines: dict[int, tuple[tuple, Engine]] = {}
        # One lock per model: a slow (or failing) load never holds up another model's.
        self._load_locks: dict[int, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self.loads = 0  # how many engines this process has built (a test reads it)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="resident-loop", daemon=True
                )
                thread.start()
                self._loop = loop
            return self._loop

    def submit(self, coro: Awaitable[Any]) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())

    def embed(self, model: Any, texts: list[str], timeout: float = 900) -> list[list[float]]:
        """Vectors of ``texts`` from ``model``'s resident engine, for synchronous callers
        (ingestion tasks); blocks the calling thread, never the loop."""

        async def go() -> list[list[float]]:
            engine = await self.engine_for(model)
            return await engine.embed(texts)

        return self.submit(go()).result(timeout=timeout)

    def must_load(self, model: Any) -> bool:
        """Whether a call to ``model`` here would first wait for its engine to load weights: it
        is not resident as the entry stands, and holds weights (a portable engine, remote or
        echo, is built at once)."""
        if engine_class(model.engine).portable:
            return False
        cached = self._engines.get(model.id)
        return cached is None or cached[0] != engine_spec(model).key

    async def engine_for(self, model: Any) -> Engine:
        """The resident engine for a catalog model, built on first use (off the loop).

        The credential is decrypted only when an engine is built, and lives in that engine.
        """
        spec = engine_spec(model)
        cached = self._engines.get(model.id)
        if cached and cached[0] == spec.key:
            return cached[1]
        spec = engine_spec(model, secret=await acredential_secret(model.credential_id))
        return await asyncio.to_thread(self._load, model.id, spec)

    def _load(self, model_id: int, spec: EngineSpec) -> Engine:
        with self._locks_lock:
            lock = self._load_locks.setdefault(model_id, threading.Lock())
        with lock:
            cached = self._engines.get(model_id)
            if cached and cached[0] == spec.key:
                return cached[1]
            log.info("loading engine %s for %s", spec.engine, spec.weights or "(no weights)")
            cls = engine_class(spec.engine)
            with TORCH_LOADS if cls.loads_torch else contextlib.nullcontext():
                engine = cls(spec)
            if cached:  # the catalog entry changed: let the old engine go
                cached[1].close()
            self._engines[model_id] = (spec.key, engine)
            self.loads += 1
            return engine

    def close_all(self, **_signal: Any) -> None:
        """Close every resident engine: when the worker stops, so that an engine's own
        processes (vLLM's engine core, holding the GPU's memory) stop with it rather than
        outliving it and keeping the next worker from loading."""
        with self._locks_lock:
            engines, self._engines = self._engines, {}
        for _, engine in engines.values():
            try:
                engine.close()
            except Exception:
                log.exception("closing engine %s failed", engine.spec.engine)


_resident = Resident()


def runtime() -> Resident:
    return _resident
