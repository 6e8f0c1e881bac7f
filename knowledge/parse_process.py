"""Parsing in a child process under memory, CPU and wall-clock limits, so one file fails alone.

Parsers are third-party code fed hostile bytes: a zip bomb the archive check cannot see, a PDF
of many streams each within pypdf's own cap, a parser bug that loops. ``parse_bounded`` runs the
parse in a fresh interpreter (never a fork of the worker, whose threads hold locks), with an
address-space limit (``RLIMIT_AS``), a CPU limit and a wall-clock timeout, and with none of the
worker's environment (its database URL and secrets). Whatever the file does, the worker thread
gets back sections or a ``ParseError`` naming the limit, and the worker process lives.

The child imports only the chosen parser's module; it reads one JSON line (what to parse and the
limits) followed by the file's bytes on stdin, and writes one JSON object to stdout:
``{"sections": [[text, page, section], …]}`` or ``{"error": "…", "type": "…"}``. JSON both ways,
so the worker never unpickles what a process that parsed hostile input sends it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import math
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.archives import ArchiveLimits, ArchiveRefused
from knowledge.parsers import PARSERS, ParseError, Section, parse_with, parser_for

log = logging.getLogger(__name__)

# The folder holding the ``knowledge`` package, put on the child's path explicitly because
# isolated mode (-I) ignores the environment and the working directory.
_ROOT = str(Path(__file__).resolve().parent.parent)
_CHILD = f"import sys; sys.path.insert(0, {_ROOT!r}); import {__name__} as p; p.child_main()"
# The CPU limit is a backstop for a child whose parent died and cannot time it out any more.
_CPU_MARGIN_S = 5
_CRASHES = (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS, -signal.SIGKILL)
_XML_ERR_NO_MEMORY = 2
_NEAR_LIMIT = 0.9


@dataclass(frozen=True)
class ParseLimits:
    """What parsing one document may use; the defaults are the studio's (settings override)."""

    # The whole address space of the parse process, interpreter and libraries included (about
    # 100 MB of it before the file is read).
    memory_mb: int = 1024
    timeout_s: float = 300.0
    archive: ArchiveLimits = field(default_factory=ArchiveLimits)


class ParseLimitExceeded(ParseError):
    """The parse process passed its memory or time limit; the message names which."""


# The refusals that cross the pipe as themselves (by name), so callers can tell them apart.
_ERRORS: dict[str, type[ParseError]] = {"archive": ArchiveRefused, "limit": ParseLimitExceeded}


def parse_bounded(
    filename: str, content_type: str, data: bytes, limits: ParseLimits
) -> list[Section]:
    """``parse_document`` in a child process under ``limits``.

    Raises ``ParseError`` as ``parse_document`` does, ``ArchiveRefused`` for a zip bomb, and
    ``ParseLimitExceeded`` when the parse passes its memory or time limit. Blocks the calling
    thread for at most ``limits.timeout_s`` (plus the child's start, about 0.1 s).
    """
    parser = parser_for(filename, content_type)
    header = {
        "kind": parser.kind,
        "module": type(parser).__module__,
        "filename": filename,
        "limits": dataclasses.asdict(limits),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _CHILD],
            input=json.dumps(header).encode() + b"\n" + data,
            capture_output=True,
            timeout=limits.timeout_s,
            env={},
            cwd=_ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # subprocess.run has killed and reaped the child by now.
        raise _took_too_long(limits) from None
    return _answer(done, limits)


def _answer(done: subprocess.CompletedProcess, limits: ParseLimits) -> list[Section]:
    try:
        reply = json.loads(done.stdout)
    except ValueError:
        reply = None
    if isinstance(reply, dict) and "sections" in reply:
        return [
            Section(text=text, page=page, section=section)
            for text, page, section in reply["sections"]
        ]
    if isinstance(reply, dict) and "error" in reply:
        raise _ERRORS.get(reply.get("type"), ParseError)(reply["error"])
    stderr = done.stderr.decode(errors="replace")[-2000:]
    log.warning("parse process ended with %s and no answer: %s", done.returncode, stderr)
    if done.returncode == -signal.SIGXCPU:
        raise _took_too_long(limits)
    if done.returncode in _CRASHES or "MemoryError" in stderr:
        # Allocation failures inside C code end the process (an abort, a segfault) rather than
        # raise, and the kernel's out-of-memory killer sends SIGKILL; under an address-space
        # limit memory is by far the likeliest reason.
        raise ParseLimitExceeded(
            f"Parsing stopped abruptly ({_exit_reason(done.returncode)}), most likely because it "
            f"needed more than {limits.memory_mb:,} MB of memory; split the document into "
            "smaller files and upload them again."
        )
    raise ParseError(
        f"The parser stopped unexpectedly ({_exit_reason(done.returncode)}); "
        "check that the file opens on your computer and upload it again."
    )


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def _took_too_long(limits: ParseLimits) -> ParseLimitExceeded:
    return ParseLimitExceeded(
        f"Parsing took longer than {limits.timeout_s:g} s; split the document into smaller files "
        "and upload them again."
    )


def _used_too_much(limits: ParseLimits) -> ParseLimitExceeded:
    return ParseLimitExceeded(
        f"Parsing used more than {limits.memory_mb:,} MB of memory; split the document into "
        "smaller files and upload them again."
    )


# The child's side.


def child_main() -> None:
    """Entry point of the parse process: parse stdin's request, answer on stdout, exit 0."""
    header, _, data = sys.stdin.buffer.read().partition(b"\n")
    request = json.loads(header)
    raw = request["limits"]
    limits = ParseLimits(
        memory_mb=raw["memory_mb"],
        timeout_s=raw["timeout_s"],
        archive=ArchiveLimits(**raw["archive"]),
    )
    importlib.import_module(request["module"])
    parser = PARSERS[request["kind"]]()
    _limit_self(limits)
    try:
        sections = parse_with(parser, request["filename"], data, limits.archive)
        del data
        reply = {"sections": [[s.text, s.page, s.section] for s in sections]}
        out = json.dumps(reply, ensure_ascii=False).encode()
    except MemoryError:
        out = _error(_used_too_much(limits))
    except ParseError as exc:
        out = _error(_used_too_much(limits) if _out_of_memory(exc, limits) else exc)
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()


def _limit_self(limits: ParseLimits) -> None:
    # Set by the child on itself after its imports: no preexec_fn, which is unsafe to run in a
    # process with threads (the worker).
    memory = limits.memory_mb * 1024 * 1024
    cpu = math.ceil(limits.timeout_s) + _CPU_MARGIN_S
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _error(exc: ParseError) -> bytes:
    kind = next((k for k, cls in _ERRORS.items() if isinstance(exc, cls)), "parse")
    return json.dumps({"error": str(exc), "type": kind}).encode()


def _out_of_memory(exc: BaseException, limits: ParseLimits) -> bool:
    """Whether a parser's error was really the memory limit.

    Python code raises ``MemoryError``, which a parser may wrap. libxml2 reports a failed
    allocation as a syntax error (code 2, ``XML_ERR_NO_MEMORY``, often with no message), and C
    code may fail in other ways still; so the process's peak address space close to the limit
    counts too.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MemoryError):
            return True
        # lxml's XMLSyntaxError is a SyntaxError carrying libxml2's error code.
        if isinstance(seen, SyntaxError) and getattr(seen, "code", None) == _XML_ERR_NO_MEMORY:
            return True
        seen = seen.__cause__ or seen.__context__
    return _peak_bytes() > _NEAR_LIMIT * limits.memory_mb * 1024 * 1024


def _peak_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024
    return 0
