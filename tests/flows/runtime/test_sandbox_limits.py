"""The code sandbox's limits hold for the whole sandbox, not one process: the code cannot start
processes or programs, cannot spread memory, CPU or threads past its limits, cannot make the
system calls Python code never needs, and sees only the interpreter and its standard library.
Every attack runs through the real sandbox process."""

from __future__ import annotations

import os
import resource
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from django.conf import settings

from flows.runtime.sandbox import SandboxError, SandboxUnavailable, run_python


async def sandboxed(code: str, timeout_s: int = 5, memory_mb: int = 256, **inputs):
    return await run_python(code=code, inputs=inputs, timeout_s=timeout_s, memory_mb=memory_mb)


async def failure(code: str, timeout_s: int = 5, memory_mb: int = 256, **inputs) -> str:
    with pytest.raises(SandboxError) as caught:
        await sandboxed(code, timeout_s, memory_mb, **inputs)
    return str(caught.value)


FORK_BOMB = """
import os, time
def main(count):
    started = 0
    for _ in range(count):
        try:
            pid = os.fork()
        except OSError as exc:
            return {'started': started, 'error': type(exc).__name__}
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        started += 1
    return {'started': started}
"""


async def test_a_fork_bomb_starts_no_process():
    # Forty forks under a limit of sixteen processes: all of them started while the worker ran
    # as root, which RLIMIT_NPROC does not bind.
    ran = await sandboxed(FORK_BOMB, count=40)
    assert ran.result == {"started": 0, "error": "PermissionError"}


async def test_no_process_or_program_can_be_started_any_other_way():
    code = """
import multiprocessing, os, subprocess, sys
def attempt(action):
    try:
        action()
    except BaseException as exc:
        return type(exc).__name__
    return 'started'
def main():
    return {
        'subprocess': attempt(lambda: subprocess.run([sys.executable, '-c', 'pass'])),
        'spawn': attempt(lambda: os.posix_spawn(sys.executable, [sys.executable], {})),
        'multiprocessing': attempt(lambda: multiprocessing.Process(target=print).start()),
        'exec': attempt(lambda: os.execv(sys.executable, [sys.executable, '-c', 'pass'])),
    }
"""
    assert (await sandboxed(code)).result == {
        "subprocess": "PermissionError",
        "spawn": "PermissionError",
        "multiprocessing": "PermissionError",
        "exec": "PermissionError",
    }


async def test_memory_cannot_be_spread_over_processes():
    # Each child would stay under the limit; together they would hold eight times it.
    code = """
import os, time
def main():
    children = []
    for _ in range(8):
        pid = os.fork()
        if pid == 0:
            block = bytearray(48 << 20)
            time.sleep(3)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return {'children': len(children)}
"""
    message = await failure(code, memory_mb=64)
    assert "line 6, in main" in message and "PermissionError" in message


async def test_memory_spread_over_threads_is_bounded_by_the_limit():
    code = """
import threading
def main():
    threading.stack_size(1 << 20)
    held, refused = [], []
    def grab():
        try:
            held.append(bytearray(16 << 20))
        except MemoryError:
            refused.append(1)
    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {'held_mb': 16 * len(held), 'refused': len(refused)}
"""
    result = (await sandboxed(code, memory_mb=64)).result
    assert result["held_mb"] < 64 and result["refused"] >= 4


async def test_threads_are_bounded_in_number():
    # Small stacks would let memory alone allow thousands (and the host has few process ids).
    code = """
import threading, time
def main():
    threading.stack_size(65536)
    started = 0
    try:
        for _ in range(300):
            threading.Thread(target=time.sleep, args=(3,), daemon=True).start()
            started += 1
    except RuntimeError as exc:
        return {'started': started, 'error': str(exc)}
    return {'started': started}
"""
    result = (await sandboxed(code)).result
    assert result["error"] == "can't start new thread"
    assert 1 <= result["started"] < 16


async def test_cpu_spread_over_threads_is_bounded_in_total():
    # hashlib lets go of the GIL, so these threads use every core at once.
    code = """
import hashlib, threading
def spin():
    data = b'x' * (1 << 20)
    while True:
        hashlib.sha256(data).digest()
def main():
    for _ in range(4):
        threading.Thread(target=spin, daemon=True).start()
    spin()
"""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    assert await failure(code, timeout_s=1) == "the code ran longer than 1 s and was stopped"
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert used < 1 + 1.5  # the code's second, and the interpreters' start-up
    assert time.monotonic() - started < 3


async def test_system_calls_python_never_needs_are_refused():
    code = """
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(result):
    return os.strerror(ctypes.get_errno()) if result != 0 else 'allowed'
def attempt(action):
    try:
        action()
    except OSError as exc:
        return type(exc).__name__
    return 'allowed'
def main():
    return {
        'ptrace': errno_of(libc.ptrace(16, 1, 0, 0)),  # PTRACE_ATTACH to the sandbox's init
        'unshare': errno_of(libc.unshare(0x10000000)),  # a user namespace of its own
        'mount': errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)),
        'inet': attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)),
        'inet6': attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)),
        'netlink': attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)),
        'memfd': attempt(lambda: os.memfd_create('hidden')),
        'shell': attempt(lambda: os.execv('/bin/sh', ['sh', '-c', 'true'])),
    }
"""
    denied = "Operation not permitted"
    assert (await sandboxed(code)).result == {
        "ptrace": denied,
        "unshare": denied,
        "mount": denied,
        "inet": "PermissionError",
        "inet6": "PermissionError",
        "netlink": "PermissionError",
        "memfd": "PermissionError",
        # /bin/sh is not there, and exec is refused before the kernel looks.
        "shell": "PermissionError",
    }


async def test_ordinary_python_still_works():
    code = """
import datetime, decimal, hashlib, json, math, re, sqlite3, threading, zoneinfo
from concurrent.futures import ThreadPoolExecutor
def main(text):
    with ThreadPoolExecutor(4) as pool:
        squares = list(pool.map(lambda n: n * n, range(5)))
    paris = datetime.datetime(2024, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))
    db = sqlite3.connect(':memory:')
    return {
        'json': json.loads(json.dumps({'a': [1, 2]})),
        'words': re.findall(r'\\w+', text),
        'root': math.isqrt(144),
        'squares': squares,
        'offset': paris.utcoffset().total_seconds(),
        'sum': str(decimal.Decimal('0.1') + decimal.Decimal('0.2')),
        'digest': hashlib.sha256(b'x').hexdigest()[:8],
        'sqlite': db.execute('select 40 + 2').fetchone()[0],
        'unix': __import__('socket').socketpair()[0].family.name,
    }
"""
    assert (await sandboxed(code, text="hello, sandbox")).result == {
        "json": {"a": [1, 2]},
        "words": ["hello", "sandbox"],
        "root": 12,
        "squares": [0, 1, 4, 9, 16],
        "offset": 7200.0,
        "sum": "0.3",
        "digest": "2d711642",
        "sqlite": 42,
        "unix": "AF_UNIX",
    }


async def test_only_the_interpreter_and_its_standard_library_are_visible():
    site_packages = sysconfig.get_path("purelib", vars={"base": sys.base_prefix})
    assert os.listdir(site_packages)  # the base interpreter's installed packages, here
    assert os.listdir("/usr/bin") and Path("/etc/passwd").is_file()
    code = """
import os
def main(folders, files):
    listed = {f: sorted(os.listdir(f)) if os.path.isdir(f) else None for f in folders}
    readable = {f: os.path.isfile(f) for f in files}
    return {'listed': listed, 'readable': readable}
"""
    folders = [site_packages, "/usr/bin", "/etc", "/home", "/root", str(settings.BASE_DIR)]
    files = ["/etc/passwd", "/usr/bin/env", str(Path(settings.BASE_DIR) / "manage.py")]
    seen = (await sandboxed(code, folders=folders, files=files)).result
    interpreter = os.path.basename(os.path.realpath(sys.executable))
    assert seen["listed"][site_packages] in (None, [])
    assert seen["listed"]["/usr/bin"] in (None, [interpreter])
    assert seen["listed"]["/etc"] is None
    assert seen["listed"]["/home"] is None
    assert seen["listed"][str(settings.BASE_DIR)] in (None, [])
    assert seen["readable"] == dict.fromkeys(files, False)


async def test_without_libseccomp_no_code_runs(settings, tmp_path):
    marker = tmp_path / "ran"
    code = f"def main():\n    open({str(marker)!r}, 'w')\n    return {{}}\n"

    settings.STUDIO_SANDBOX_LIBSECCOMP = str(tmp_path / "missing" / "libseccomp.so.2")
    with pytest.raises(SandboxUnavailable) as caught:
        await sandboxed(code)
    assert "libseccomp" in str(caught.value)
    assert "never runs outside the sandbox" in str(caught.value)

    # A library that loads but is not libseccomp: the filter cannot be made.
    settings.STUDIO_SANDBOX_LIBSECCOMP = "libm.so.6"
    with pytest.raises(SandboxUnavailable) as caught:
        await sandboxed(code)
    assert "seccomp_init" in str(caught.value)
    assert not marker.exists()
