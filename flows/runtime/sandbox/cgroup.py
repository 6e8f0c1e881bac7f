"""A cgroup v2 per call, bounding the whole sandbox's memory, process count and CPU, where the
kernel and the worker's place in the hierarchy allow one.

Where they do not (cgroup v1, no delegated controllers) the sandbox is bounded by its seccomp
filter and rlimits alone (``runner.py``): it cannot start processes, so ``RLIMIT_AS`` and
``RLIMIT_CPU`` of its one process bound the total, and ``RLIMIT_NPROC`` its threads. The cgroup
adds what rlimits do not count: kernel memory (thread stacks, pipe buffers), ``/tmp``'s pages,
and a CPU rate (one CPU) rather than only a total.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import uuid
from dataclasses import dataclass

logger = logging.getLogger(__name__)

CONTROLLERS = ("cpu", "memory", "pids")
CPU_PERIOD_US = 100_000
# Memory for the sandbox's init and the interpreter around the code (the code's own limit is
# its RLIMIT_AS, the same in both modes).
MEMORY_HEADROOM = 64 * 1024 * 1024
REMOVE_TRIES = 50
REMOVE_PAUSE_S = 0.01


@dataclass(frozen=True)
class Confinement:
    """How the sandbox is bounded as a whole on this host, and why."""

    parent: str | None  # the cgroup v2 folder per-call cgroups are made in; None: rlimits only
    reason: str
    refused: bool = False  # a cgroup was asked for by name and cannot be used: run no code

    @property
    def name(self) -> str:
        return "cgroup v2 + seccomp + rlimits" if self.parent else "seccomp + rlimits"


@functools.cache
def confinement(setting: str) -> Confinement:
    """``setting`` (``STUDIO_SANDBOX_CGROUP``): a cgroup v2 folder delegated to the worker, with
    cpu, memory and pids enabled for its children; "auto": the worker's own cgroup, if it is
    one; "off": none. Checked once per process. A folder named that cannot be used refuses
    the sandbox rather than run it with less than the admin asked for."""
    if setting == "off":
        return Confinement(None, "cgroups are turned off (STUDIO_SANDBOX_CGROUP=off)")
    parent = _own_cgroup() if setting == "auto" else setting
    if parent is None:
        return Confinement(None, "there is no cgroup v2 hierarchy")
    problem = _unusable(parent)
    if problem is not None:
        if setting != "auto":
            logger.warning("STUDIO_SANDBOX_CGROUP cannot be used: %s", problem)
        return Confinement(None, problem, refused=setting != "auto")
    return Confinement(parent, f"a cgroup per call under {parent}")


def _own_cgroup() -> str | None:
    """The worker's own cgroup v2 folder, or None where there is no cgroup2 mount."""
    mount = None
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split(" - ")
            if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
                mount = fields[0].split()[4]
                break
    if mount is None:
        return None
    with open("/proc/self/cgroup") as groups:
        path = next((line[3:].strip() for line in groups if line.startswith("0::")), None)
    return None if path is None else os.path.join(mount, path.lstrip("/"))


def _unusable(parent: str) -> str | None:
    """Why per-call cgroups cannot be made under ``parent``, or None."""
    try:
        with open(os.path.join(parent, "cgroup.subtree_control")) as control:
            enabled = set(control.read().split())
        missing = sorted(set(CONTROLLERS) - enabled)
        if missing:
            # Works where the cgroup holds no process itself (the kernel refuses otherwise).
            _write(parent, "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
    except OSError as exc:
        return f"cgroup v2 controllers {', '.join(CONTROLLERS)} cannot be used at {parent}: {exc}"
    if not os.access(parent, os.W_OK):
        return f"{parent} is not writable by the worker"
    return None


def _write(folder: str, name: str, value: str) -> None:
    with open(os.path.join(folder, name), "w") as control:
        control.write(value)


def cgroup_create(*, parent: str, memory_bytes: int, processes: int) -> str:
    """A new cgroup under ``parent`` with these limits and at most one CPU; its path."""
    path = os.path.join(parent, f"studio-sandbox-{uuid.uuid4().hex[:16]}")
    os.mkdir(path)
    try:
        _write(path, "memory.max", str(memory_bytes + MEMORY_HEADROOM))
        with contextlib.suppress(FileNotFoundError):  # no swap accounting: no swap to limit
            _write(path, "memory.swap.max", "0")
        _write(path, "pids.max", str(processes))
        _write(path, "cpu.max", f"{CPU_PERIOD_US} {CPU_PERIOD_US}")
    except OSError:
        os.rmdir(path)
        raise
    return path


async def cgroup_remove(path: str) -> None:
    """Kill whatever is left in the cgroup, then remove it (once its processes are gone)."""
    try:
        _write(path, "cgroup.kill", "1")
    except FileNotFoundError:  # before Linux 5.14
        with contextlib.suppress(OSError), open(os.path.join(path, "cgroup.procs")) as procs:
            for pid in procs.read().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
    for _ in range(REMOVE_TRIES):
        try:
            os.rmdir(path)
            return
        except OSError:
            await asyncio.sleep(REMOVE_PAUSE_S)
    logger.warning("the sandbox cgroup %s could not be removed", path)
