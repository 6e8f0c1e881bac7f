"""Starting the sandbox process for one call, bounding it, and reading its answer.

Each call is a fresh process, never the web or worker process itself: the base interpreter
(``-I -S``: no site-packages, no environment, no user folder) with an empty environment in a
fresh empty folder. ``runner.py`` (inside) makes the user, mount, network, PID and IPC
namespaces, builds the root the code sees (``layout.py``: the interpreter, its libraries and its
standard library, nothing else), sets the resource limits and the seccomp filter, then runs the
code. The whole sandbox is bounded by a cgroup v2 per call where the host allows one
(``cgroup.py``), and otherwise by the filter and the rlimits, which bound the total because the
code cannot start a process. Out here: a wall-clock timeout that kills the whole process group
(and with its init, the PID namespace), and caps on what is read back.

There is no fallback that runs code unconfined: without user namespaces or libseccomp the call
raises ``SandboxUnavailable`` and no code runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.conf import settings

from flows.runtime.sandbox.cgroup import cgroup_create, cgroup_remove, confinement
from flows.runtime.sandbox.layout import Layout, LayoutError, sandbox_layout

RUNNER = Path(__file__).with_name("runner.py")
SETUP_FAILED = 70  # runner.SETUP_FAILED: the runner is never imported here
FLAGS = ("-I", "-S", "-B", "-X", "utf8")

# What the code gets besides its memory and time.
RESULT_BYTES = 1024 * 1024
LOG_CHARS = 16_000
TMP_OPTIONS = "size=16m,nr_inodes=1024,mode=1777"
FILE_BYTES = 16 * 1024 * 1024
OPEN_FILES = 64
# The code's threads, and its init: the kernel holds RLIMIT_NPROC because the code runs as an
# unprivileged user of the host (see runner.py), and the code can start no process.
PROCESSES = 16
# When the worker is root, the code's user on the host is this plus the sandbox's process id:
# unique among running sandboxes, and far above the ids of real users.
ID_BASE = 1_900_000_000
# Wall-clock allowance on top of the code's own time: the namespaces and the interpreter start.
START_S = 1.0
STDERR_BYTES = 16_384
# Shared scratch folders of the host: hidden as well, in case a shown directory holds them.
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")


class SandboxError(Exception):
    """The code failed or hit a limit; the message is for the user (their line, the limit)."""


class SandboxUnavailable(SandboxError):
    """This server cannot sandbox code (no user namespaces, no usable libseccomp or seccomp, or
    a cgroup asked for that cannot be used)."""


@dataclass(frozen=True)
class SandboxResult:
    result: dict[str, Any]
    logs: str
    elapsed_ms: float
    confinement: str = ""  # what bounds the sandbox as a whole (cgroup.Confinement.name)


def _interpreter() -> str:
    base = Path(sys.base_prefix) / "bin"
    for name in (f"python{sys.version_info.major}.{sys.version_info.minor}", "python3"):
        if (base / name).exists():
            return str(base / name)
    raise SandboxUnavailable(f"no base Python interpreter in {base} to run code with")


def _hidden(layout: Layout) -> list[str]:
    studio = (settings.BASE_DIR, settings.VAR_DIR, settings.MEDIA_ROOT, settings.STUDIO_MODEL_DIR)
    mine = {os.path.realpath(p) for p in (*studio, *SCRATCH_DIRS)}
    return sorted(mine | set(layout.hidden))


async def _layout(python: str) -> Layout:
    try:
        return await sandbox_layout(python, settings.STUDIO_SANDBOX_LIBSECCOMP)
    except LayoutError as exc:
        raise SandboxUnavailable(
            f"code cannot run on this server: the sandbox's seccomp filter needs libseccomp "
            f"({settings.STUDIO_SANDBOX_LIBSECCOMP}): {exc}; code never runs outside the sandbox"
        ) from None


def _plan(
    python: str, layout: Layout, root: str, group: str | None, timeout_s: int, memory_mb: int
) -> dict[str, Any]:
    run = {
        "call": os.path.basename(root),  # names the code's process in ps
        "memory_mb": memory_mb,
        "log_chars": LOG_CHARS,
        "result_bytes": RESULT_BYTES,
        "libseccomp": layout.libseccomp,
    }
    return {
        "root": root,
        "cgroup": group,
        "id_base": ID_BASE,
        "read_only": list(layout.read_only),
        "links": [list(link) for link in layout.links],
        "hidden": _hidden(layout),
        "tmp_options": TMP_OPTIONS,
        "memory_mb": memory_mb,
        "cpu_s": timeout_s,
        "file_bytes": FILE_BYTES,
        "open_files": OPEN_FILES,
        "processes": PROCESSES,
        "python": python,
        "flags": list(FLAGS),
        "env": {"LD_LIBRARY_PATH": layout.library_path},
        "source": RUNNER.read_text(),
        "run": run,
    }


class _TooLarge(Exception):
    pass


async def _read(stream: asyncio.StreamReader, limit: int, *, strict: bool) -> bytes:
    """Everything ``stream`` gives until EOF, keeping ``limit`` bytes. ``strict``: more than
    that raises ``_TooLarge`` (the caller kills the process); else the rest is drained."""
    kept = bytearray()
    while chunk := await stream.read(65_536):
        if len(kept) + len(chunk) > limit:
            if strict:
                raise _TooLarge
            chunk = chunk[: max(0, limit - len(kept))]
        kept += chunk
    return bytes(kept)


async def _feed(stdin: asyncio.StreamWriter, payload: bytes) -> None:
    try:
        stdin.write(payload)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the process ended before reading everything: its exit says why
    finally:
        stdin.close()


def _kill(process: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def run_python(
    *, code: str, inputs: dict[str, Any], timeout_s: int, memory_mb: int
) -> SandboxResult:
    """Call ``main(**inputs)`` of ``code`` in a sandbox process and return its dict.

    Raises ``SandboxError`` with a message for the user when the code fails (their exception
    and its lines), runs past ``timeout_s``, goes over ``memory_mb``, or returns no JSON dict;
    ``SandboxUnavailable`` when the server cannot sandbox. Cancelling the call kills the process.
    """
    python = _interpreter()
    layout = await _layout(python)
    confined = confinement(settings.STUDIO_SANDBOX_CGROUP)
    if confined.refused:
        raise SandboxUnavailable(
            f"code cannot run on this server: {confined.reason} (STUDIO_SANDBOX_CGROUP); "
            "code never runs outside the sandbox"
        )
    payload = json.dumps({"code": code, "inputs": inputs}).encode()
    root = tempfile.mkdtemp(prefix="studio-sandbox-")
    group = None
    try:
        if confined.parent is not None:
            group = cgroup_create(
                parent=confined.parent,
                memory_bytes=memory_mb * 1024 * 1024,
                processes=PROCESSES + 4,  # and the runner's own: enter, its helper, init
            )
        plan = _plan(python, layout, root, group, timeout_s, memory_mb)
        started = time.monotonic()
        out, err, status = await _call(python, plan, payload, timeout_s)
    finally:
        if group is not None:
            await cgroup_remove(group)
        shutil.rmtree(root, ignore_errors=True)
    elapsed_ms = (time.monotonic() - started) * 1000
    ran = _answer(out, err.decode(errors="replace").strip(), status, timeout_s, elapsed_ms)
    return replace(ran, confinement=confined.name)


async def _call(
    python: str, plan: dict[str, Any], payload: bytes, timeout_s: int
) -> tuple[bytes, bytes, int]:
    """Run the sandbox to its end or its deadline: what it wrote, and its exit status."""
    command = [python, *FLAGS, "-c", plan["source"], "enter", json.dumps(plan)]
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={},
            cwd=plan["root"],
            start_new_session=True,  # its own process group, killed as one
        )
    except OSError as exc:
        raise SandboxUnavailable(f"code cannot run on this server: {exc}") from None
    try:
        async with asyncio.timeout(timeout_s + START_S):
            out, err, _ = await asyncio.gather(
                _read(process.stdout, RESULT_BYTES + 4096, strict=True),
                _read(process.stderr, STDERR_BYTES, strict=False),
                _feed(process.stdin, payload),
            )
            return out, err, await process.wait()
    except TimeoutError:
        raise SandboxError(f"the code ran longer than {timeout_s} s and was stopped") from None
    except _TooLarge:
        raise SandboxError(f"the result is larger than {RESULT_BYTES // 1024:,} kB") from None
    finally:
        if process.returncode is None:
            _kill(process)
            await process.wait()


def _answer(out: bytes, err: str, status: int, timeout_s: int, elapsed_ms: float) -> SandboxResult:
    if out:
        try:
            answer = json.loads(out)
        except ValueError:
            raise SandboxError("the code's process wrote something that is not a result") from None
        if not isinstance(answer, dict):
            raise SandboxError("the code's process wrote something that is not a result")
        if answer.get("ok") and isinstance(answer.get("result"), dict):
            return SandboxResult(answer["result"], str(answer.get("logs") or ""), elapsed_ms)
        raise SandboxError(str(answer.get("error") or "the code failed"))
    if status == SETUP_FAILED and "sandbox setup failed" in err:
        # No user namespaces, a kernel or security module that lets them be made but not used
        # (mounts refused), or a seccomp filter the kernel will not take.
        raise SandboxUnavailable(
            f"code cannot run on this server: {err.splitlines()[-1]} (the sandbox needs "
            "unprivileged user namespaces and seccomp); code never runs outside the sandbox"
        )
    if status == 128 + signal.SIGXCPU:
        raise SandboxError(f"the code ran longer than {timeout_s} s and was stopped")
    if status == 128 + signal.SIGKILL:
        raise SandboxError("the code was killed: it went over its time or memory limit")
    if status > 128:
        name = signal.Signals(status - 128).name if status - 128 in _SIGNALS else status - 128
        raise SandboxError(f"the code crashed (signal {name})")
    raise SandboxError(f"the code ended without a result (exit status {status})")


_SIGNALS = {s.value for s in signal.Signals}
