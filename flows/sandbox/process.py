"""Starting the sandbox process for one call, bounding it, and reading its answer.

Each call is a fresh process, never the web or worker process itself: the base interpreter
(``-I -S``: no site-packages, no environment, no user folder), started by ``unshare`` in new
user, mount, network and PID namespaces with an empty environment, in a fresh empty folder.
``runner.py`` (inside) builds the root the code sees and sets the resource limits before it
execs the interpreter that runs the code. Out here: a wall-clock timeout that kills the whole
process group (and with its init, the PID namespace), and caps on what is read back.

There is no fallback: without ``unshare`` or user namespaces the call raises
``SandboxUnavailable`` and no code runs.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

RUNNER = Path(__file__).with_name("runner.py")
SETUP_FAILED = 70  # runner.SETUP_FAILED: the runner is never imported here

# What the code gets besides its memory and time.
RESULT_BYTES = 1024 * 1024
LOG_CHARS = 16_000
TMP_OPTIONS = "size=16m,nr_inodes=1024,mode=1777"
FILE_BYTES = 16 * 1024 * 1024
OPEN_FILES = 64
# Threads and processes together. The kernel counts them per user namespace (Linux 5.14+) and
# does not limit real root; the PID namespace's end takes whatever is left either way.
PROCESSES = 16
# Wall-clock allowance on top of the code's own time: the namespaces and the interpreter start.
START_S = 1.0
STDERR_BYTES = 16_384
# The system directories the interpreter needs, read-only; the base interpreter's own prefix is
# added to them. Nothing else of the host is there (no /etc, /home, /proc, the studio's folders).
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32")
# Shared scratch folders of the host: hidden as well, in case a system directory holds them.
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")


class SandboxError(Exception):
    """The code failed or hit a limit; the message is for the user (their line, the limit)."""


class SandboxUnavailable(SandboxError):
    """This server cannot sandbox code (no ``unshare``, or user namespaces are disabled)."""


@dataclass(frozen=True)
class SandboxResult:
    result: dict[str, Any]
    logs: str
    elapsed_ms: float


def _interpreter() -> str:
    base = Path(sys.base_prefix) / "bin"
    for name in (f"python{sys.version_info.major}.{sys.version_info.minor}", "python3"):
        if (base / name).exists():
            return str(base / name)
    raise SandboxUnavailable(f"no base Python interpreter in {base} to run code with")


def _read_only(python: str) -> list[str]:
    wanted = [*SYSTEM_DIRS, sys.base_prefix, str(Path(os.path.realpath(python)).parent.parent)]
    kept: list[str] = []
    for path in wanted:
        covered = any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept)
        if not covered:
            kept.append(path)
    return kept


def _hidden() -> list[str]:
    studio = (settings.BASE_DIR, settings.VAR_DIR, settings.MEDIA_ROOT, settings.STUDIO_MODEL_DIR)
    return sorted({os.path.realpath(p) for p in (*studio, *SCRATCH_DIRS)})


def _plan(python: str, root: str, timeout_s: int, memory_mb: int) -> dict[str, Any]:
    flags = ["-I", "-S", "-B", "-X", "utf8"]
    return {
        "root": root,
        "read_only": _read_only(python),
        "hidden": _hidden(),
        "tmp_options": TMP_OPTIONS,
        "memory_mb": memory_mb,
        "cpu_s": timeout_s,
        "file_bytes": FILE_BYTES,
        "open_files": OPEN_FILES,
        "processes": PROCESSES,
        "python": python,
        "flags": flags,
        "source": RUNNER.read_text(),
        "run": {"memory_mb": memory_mb, "log_chars": LOG_CHARS, "result_bytes": RESULT_BYTES},
    }


def _unshare() -> str:
    name = settings.STUDIO_SANDBOX_UNSHARE
    found = shutil.which(name)
    if found is None:
        raise SandboxUnavailable(
            f"code cannot run on this server: the sandbox needs the {name!r} command "
            "(util-linux), and there is none; code never runs outside the sandbox"
        )
    return found


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
    unshare = _unshare()
    python = _interpreter()
    payload = json.dumps({"code": code, "inputs": inputs}).encode()
    root = tempfile.mkdtemp(prefix="studio-sandbox-")
    plan = _plan(python, root, timeout_s, memory_mb)
    command = [
        unshare,
        "--user",
        "--map-root-user",
        "--net",
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        python,
        *plan["flags"],
        "-c",
        plan["source"],
        "setup",
        json.dumps(plan),
    ]
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={},
            cwd=root,
            start_new_session=True,  # its own process group, killed as one
        )
    except OSError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise SandboxUnavailable(f"code cannot run on this server: {exc}") from None
    try:
        async with asyncio.timeout(timeout_s + START_S):
            out, err, _ = await asyncio.gather(
                _read(process.stdout, RESULT_BYTES + 4096, strict=True),
                _read(process.stderr, STDERR_BYTES, strict=False),
                _feed(process.stdin, payload),
            )
            status = await process.wait()
    except TimeoutError:
        raise SandboxError(f"the code ran longer than {timeout_s} s and was stopped") from None
    except _TooLarge:
        raise SandboxError(f"the result is larger than {RESULT_BYTES // 1024:,} kB") from None
    finally:
        if process.returncode is None:
            _kill(process)
            await process.wait()
        shutil.rmtree(root, ignore_errors=True)
    elapsed_ms = (time.monotonic() - started) * 1000
    return _answer(out, err.decode(errors="replace").strip(), status, timeout_s, elapsed_ms)


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
    if err.startswith("unshare:"):
        raise SandboxUnavailable(
            f"code cannot run on this server: {err.splitlines()[0]} (the sandbox needs "
            "unprivileged user namespaces); code never runs outside the sandbox"
        )
    if status == SETUP_FAILED and "sandbox setup failed" in err:
        # A kernel or security module that lets namespaces be made but not used (mounts refused).
        raise SandboxUnavailable(f"code cannot run on this server: {err.splitlines()[-1]}")
    if status == 128 + signal.SIGXCPU:
        raise SandboxError(f"the code ran longer than {timeout_s} s and was stopped")
    if status == 128 + signal.SIGKILL:
        raise SandboxError("the code was killed: it went over its time or memory limit")
    if status > 128:
        name = signal.Signals(status - 128).name if status - 128 in _SIGNALS else status - 128
        raise SandboxError(f"the code crashed (signal {name})")
    raise SandboxError(f"the code ended without a result (exit status {status})")


_SIGNALS = {s.value for s in signal.Signals}
