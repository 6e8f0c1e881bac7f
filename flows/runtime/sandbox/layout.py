"""What the sandbox's root shows of the host: the base interpreter, the libraries it loads, its
standard library without installed packages, libseccomp and the timezone data; nothing else.

A probe (the base interpreter, as the sandbox starts it) imports every extension module of the
standard library and loads libseccomp, then reports the files it mapped: that is the list of
libraries to show, whatever the distribution. It runs once per worker process.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

# Data code often reads and every program may: the timezones zoneinfo looks for.
DATA_DIRS = ("/usr/share/zoneinfo",)
# Installed packages inside the standard library's folder: shown as empty folders.
PACKAGE_DIRS = ("site-packages", "dist-packages")
SECCOMP_FUNCTIONS = (
    "seccomp_init",
    "seccomp_attr_set",
    "seccomp_syscall_resolve_name",
    "seccomp_rule_add_array",
    "seccomp_load",
    "seccomp_release",
)
# Extension modules for a terminal or a display, which the sandbox has not: their libraries
# (X11, Tk, curses) stay out.
UNUSED_MODULES = ("_tkinter", "readline", "_curses", "_curses_panel")
PT_INTERP = 3
MAX_LINKS = 40

PROBE = """
import ctypes, importlib, json, os, sys
unused = set(sys.argv[2].split(','))
def mapped():
    with open('/proc/self/maps') as maps:
        rows = [line.rstrip('\\n').split(maxsplit=5) for line in maps]
    return {row[5] for row in rows if len(row) == 6 and row[5].startswith('/')}
before, error = mapped(), None
try:
    library = ctypes.CDLL(sys.argv[1])
    for name in sys.argv[3:]:
        getattr(library, name)
except (OSError, AttributeError) as exc:
    error = str(exc)
seccomp = sorted(mapped() - before)
for folder in sys.path:
    if folder.endswith('lib-dynload') and os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            if name.split('.')[0] in unused:
                continue
            try:
                importlib.import_module(name.split('.')[0])
            except Exception:
                pass  # a module whose library is not installed: code cannot use it anyway
report = {'path': sys.path, 'mapped': sorted(mapped()), 'seccomp': seccomp, 'error': error}
print('\\n' + json.dumps(report))
"""


class LayoutError(Exception):
    """The host cannot give the sandbox what it needs; the message says what is missing."""


@dataclass(frozen=True)
class Layout:
    read_only: tuple[str, ...]  # real paths, files and folders, bound read-only where they are
    links: tuple[tuple[str, str], ...]  # (path, target): the links met on the way to them
    hidden: tuple[str, ...]  # folders inside those, shown empty (installed packages)
    library_path: str  # LD_LIBRARY_PATH: the root has no loader cache (no /etc)
    libseccomp: str


_layouts: dict[tuple[str, str], Layout] = {}


async def sandbox_layout(python: str, libseccomp: str) -> Layout:
    """What the sandbox of ``python`` shows, with ``libseccomp`` (a name or a path); probed once
    per process. ``LayoutError`` when libseccomp cannot be loaded or lacks what the filter
    needs."""
    key = (python, libseccomp)
    known = _layouts.get(key)
    # Probed again when a file is gone (a library upgraded since): its bind would be missing.
    if known is None or not all(os.path.exists(p) for p in known.read_only):
        known = _layouts[key] = _layout(python, await _probe(python, libseccomp))
    return known


async def _probe(python: str, libseccomp: str) -> dict:
    process = await asyncio.create_subprocess_exec(
        *(python, "-I", "-S", "-B", "-c", PROBE, libseccomp, ",".join(UNUSED_MODULES)),
        *SECCOMP_FUNCTIONS,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={},
        cwd="/",
    )
    out, err = await process.communicate()
    try:
        return json.loads(out.decode().splitlines()[-1])
    except (ValueError, IndexError):
        problem = err.decode(errors="replace").strip()[-500:]
        raise LayoutError(f"the interpreter {python} failed its probe: {problem}") from None


def _layout(python: str, probe: dict) -> Layout:
    if probe["error"] or not probe["seccomp"]:
        raise LayoutError(f"libseccomp cannot be used ({probe['error'] or 'not loaded'})")
    links: dict[str, str] = {}
    files = {p for p in probe["mapped"] if os.path.isfile(p)}
    files |= {_real(p, links) for p in (python, _elf_interpreter(python)) if p}
    libraries = {p for p in files if ".so" in os.path.basename(p)}
    links.update(_sonames(libraries))
    folders = {_real(p, links) for p in probe["path"] if os.path.exists(p)}
    folders |= {p for p in DATA_DIRS if os.path.isdir(p)}
    hidden = [
        os.path.join(folder, name)
        for folder in sorted(folders)
        for name in PACKAGE_DIRS
        if os.path.isdir(os.path.join(folder, name))
    ]
    return Layout(
        read_only=_outermost(files | folders),
        links=tuple(sorted(links.items())),
        hidden=tuple(hidden),
        library_path=":".join(sorted({os.path.dirname(p) for p in libraries})),
        libseccomp=next(
            (p for p in probe["seccomp"] if "seccomp" in os.path.basename(p)), probe["seccomp"][0]
        ),
    )


def _real(path: str, links: dict[str, str], depth: int = 0) -> str:
    """``path`` with each symlink on the way resolved, every one met recorded in ``links``."""
    if depth > MAX_LINKS:
        raise LayoutError(f"too many levels of symbolic links in {path}")
    current = "/"
    for part in Path(path).parts[1:]:
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            target = os.readlink(candidate)
            links[candidate] = target
            # ``current`` is real (no links), so ".." in the target means its real parent.
            candidate = _real(os.path.normpath(os.path.join(current, target)), links, depth + 1)
        current = candidate
    return current


def _sonames(libraries: set[str]) -> dict[str, str]:
    """The links beside each library that lead to it (``libffi.so.8`` -> ``libffi.so.8.1.2``):
    the names programs ask the loader for."""
    found: dict[str, str] = {}
    for folder in {os.path.dirname(p) for p in libraries}:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_symlink() and os.path.realpath(entry.path) in libraries:
                    found[entry.path] = os.readlink(entry.path)
    return found


def _elf_interpreter(path: str) -> str | None:
    """The program loader a dynamically linked 64-bit ELF names (its PT_INTERP), else None."""
    with open(path, "rb") as elf:
        header = elf.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:
            raise LayoutError(f"{path} is not a 64-bit ELF program")
        order = "<" if header[5] == 1 else ">"
        (table,) = struct.unpack_from(order + "Q", header, 0x20)
        entry_size, entries = struct.unpack_from(order + "HH", header, 0x36)
        for index in range(entries):
            elf.seek(table + index * entry_size)
            kind, _, offset, _, _, size = struct.unpack(order + "IIQQQQ", elf.read(40))
            if kind == PT_INTERP:
                elf.seek(offset)
                return elf.read(size).rstrip(b"\0").decode()
    return None


def _outermost(paths: set[str]) -> tuple[str, ...]:
    """``paths`` less those inside another of them (a bind of the folder shows them)."""
    kept: list[str] = []
    for path in sorted(paths):
        if not any(path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return tuple(kept)
