"""Template renders in child processes that are killed at their deadline.

The sandbox's own checks (``flows/runtime/template_sandbox.py``) stop friendly templates with a
reason, but a thread cannot be stopped from outside, and the executor renders on the worker's
thread pool, where Celery's time limits do nothing. So each render goes to a renderer process
(``python -m flows.runtime.template_renderer``) that the calling thread kills once the deadline
and a short grace have passed: the thread is free by then, whatever the template does.

The renderers speak JSON lines over their pipes, never pickle (a renderer that got out of the
sandbox still cannot make the worker run code); they start with an empty environment (no
database URL or key to read), and limit their own address space, CPU time and file writes.
Idle renderers are kept for the next render, so a render costs a round trip (well under a
millisecond), not a process start; a killed one is replaced at once.
"""

from __future__ import annotations

import json
import math
import os
import resource
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from flows.runtime.template_sandbox import (
    MAX_OUTPUT,
    RENDER_TIMEOUT_S,
    TemplateError,
    template_render,
    timed_out,
)

# How long after the render's deadline a renderer is killed: its own check says why first,
# with the template's line.
KILL_GRACE_S = 0.5
# A fresh renderer imports Jinja2 in about 0.2 s; this long at most, apart from any deadline.
START_TIMEOUT_S = 30.0
# Idle renderers kept per worker process (about 35 MB each): the worker's default thread pool.
# Only as many start as ever render at once.
IDLE_KEPT = 8
# The longest reply: the longest text, every character escaped (12 bytes beyond the BMP).
MAX_REPLY = 12 * MAX_OUTPUT + 1024
# A renderer's CPU seconds in all: it retires past half, so a render always has its share.
CPU_PER_RENDERER_S = 600
_ROOT = Path(__file__).resolve().parents[2]
# What a renderer may know of the worker's environment: where Python finds its packages, not
# the database URL or the keys.
_ENVIRONMENT = {"PATH": os.defpath, "LC_ALL": "C.UTF-8"} | {
    name: os.environ[name] for name in ("PYTHONPATH",) if name in os.environ
}


class _Broken(Exception):
    """The renderer died or broke the protocol; the message says how, for the node's error."""


class _Renderer:
    """One renderer process and the pipes to it. Used by one thread at a time."""

    def __init__(self, memory_mb: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-s", "-m", "flows.runtime.template_renderer", str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=_ROOT,
            env=_ENVIRONMENT,
        )
        self._in, self._out = self.process.stdin.fileno(), self.process.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._out, selectors.EVENT_READ)
        self.started = False

    def ask(self, request: bytes, deadline: float) -> dict:
        """Send ``request`` and read the reply line. TimeoutError at ``deadline``; ``_Broken``
        if the renderer dies or says too much."""
        if not self.started:  # its "ready" line, with time of its own to start
            try:
                self._exchange(b"", time.monotonic() + START_TIMEOUT_S)
            except TimeoutError:
                raise _Broken(f"the renderer did not start in {START_TIMEOUT_S:g} s") from None
            self.started = True
        return json.loads(self._exchange(request, deadline))

    def _exchange(self, request: bytes, deadline: float) -> bytes:
        pending, reply = memoryview(request), bytearray()
        if pending:
            self._selector.register(self._in, selectors.EVENT_WRITE)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                for key, _ in self._selector.select(left):
                    if key.fd == self._in:
                        pending = pending[self._write(pending) :]
                        if not pending:
                            self._selector.unregister(self._in)
                        continue
                    chunk = os.read(self._out, 1 << 16)
                    if not chunk:
                        raise _Broken(self._death())
                    reply += chunk
                    if reply.endswith(b"\n"):
                        return bytes(reply)
                    if len(reply) > MAX_REPLY:
                        raise _Broken("the renderer's reply was too long")
        finally:
            if pending and self._in in self._selector.get_map():
                self._selector.unregister(self._in)

    def _write(self, data: memoryview) -> int:
        try:
            return os.write(self._in, data[: 1 << 16])
        except BlockingIOError:
            return 0
        except BrokenPipeError:
            raise _Broken(self._death()) from None

    def _death(self) -> str:
        try:
            code = self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "the renderer closed its pipe"
        if code == -signal.SIGXCPU:
            return "the renderer used up its CPU time"
        return f"the renderer stopped (exit status {code})"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self._selector.close()
        self.process.stdin.close()
        self.process.stdout.close()


class _Pool:
    """The idle renderers of this process. Thread-safe; each render takes one for itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Renderer] = []
        self._pid = os.getpid()

    def take(self) -> _Renderer:
        with self._lock:
            if self._pid != os.getpid():  # a forked copy: those pipes are the parent's
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        return _Renderer(settings.STUDIO_TEMPLATE_MEMORY_MB)

    def give_back(self, renderer: _Renderer) -> None:
        with self._lock:
            if len(self._idle) < IDLE_KEPT:
                self._idle.append(renderer)
                return
        renderer.kill()

    def replace(self, renderer: _Renderer) -> None:
        """Kill ``renderer`` and start another in its place (it imports while nobody waits)."""
        renderer.kill()
        self.give_back(_Renderer(settings.STUDIO_TEMPLATE_MEMORY_MB))


_POOL = _Pool()


def render(source: str, inputs: dict[str, Any], timeout_s: float = RENDER_TIMEOUT_S) -> str:
    """Render ``source`` with the node's inputs (keyed by port) in a renderer process, killed
    if it has not answered ``KILL_GRACE_S`` after ``timeout_s``. Raises ``TemplateError`` with
    the reason for anything that goes wrong."""
    request = {"source": source, "inputs": inputs, "timeout_s": timeout_s}
    # ASCII: a lone surrogate (valid in a str, not in UTF-8) crosses escaped.
    line = json.dumps(request, default=str).encode() + b"\n"
    renderer = _POOL.take()
    try:
        reply = renderer.ask(line, time.monotonic() + timeout_s + KILL_GRACE_S)
    except TimeoutError:
        _POOL.replace(renderer)
        raise timed_out(timeout_s) from None
    except _Broken as exc:
        _POOL.replace(renderer)
        raise TemplateError(str(exc)) from None
    except ValueError:
        _POOL.replace(renderer)
        raise TemplateError("the renderer's reply was not JSON") from None
    except BaseException:  # this thread's own trouble: the renderer is in an unknown state
        renderer.kill()
        raise
    if reply.get("retire"):
        _POOL.replace(renderer)
    else:
        _POOL.give_back(renderer)
    if "error" in reply:
        raise TemplateError(str(reply["error"]))
    if not isinstance(reply.get("text"), str):
        raise TemplateError("the renderer's reply had no text")
    return reply["text"]


# --- the renderer process ---------------------------------------------------------------------


def _limit(memory_mb: int) -> None:
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_PER_RENDERER_S, CPU_PER_RENDERER_S))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _answer(request: bytes, memory_mb: int) -> dict:
    try:
        asked = json.loads(request)
        timeout_s = float(asked["timeout_s"])
        # Should the worker be gone, the render still ends: SIGXCPU past its share.
        cpu = math.ceil(_cpu_used() + timeout_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, CPU_PER_RENDERER_S))
        reply: dict = {"text": template_render(asked["source"], asked["inputs"], timeout_s)}
    except TemplateError as exc:
        reply = {"error": str(exc)}
    except MemoryError:
        return {"error": f"rendering needs more than {memory_mb} MB of memory", "retire": True}
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        return {"error": f"the renderer could not read the request: {exc}", "retire": True}
    if _cpu_used() > CPU_PER_RENDERER_S / 2:
        reply["retire"] = True
    return reply


def _serve(memory_mb: int) -> None:
    """Answer one JSON request a line on stdin with one JSON reply a line on stdout, until
    stdin closes (the worker is gone)."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the replies
    template_render("{{ warm }}", {"warm": 1})  # Jinja's lexer, compiled once
    _limit(memory_mb)
    replies.write(b'{"ready": true}\n')
    replies.flush()
    for request in requests:
        reply = _answer(request, memory_mb)
        replies.write(json.dumps(reply).encode() + b"\n")
        replies.flush()
        if reply.get("retire"):
            return


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
