"""The code sandbox with real processes: what the code gets back, and what it cannot reach or
keep doing (the network, the studio's files, time, memory), and no code at all without it."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from flows.runtime.sandbox import SandboxError, SandboxUnavailable, run_python
from flows.runtime.sandbox.cgroup import confinement


async def sandboxed(code: str, timeout_s: int = 5, memory_mb: int = 256, **inputs):
    return await run_python(code=code, inputs=inputs, timeout_s=timeout_s, memory_mb=memory_mb)


async def failure(code: str, timeout_s: int = 5, memory_mb: int = 256, **inputs) -> str:
    with pytest.raises(SandboxError) as caught:
        await sandboxed(code, timeout_s, memory_mb, **inputs)
    return str(caught.value)


async def test_main_is_called_with_the_inputs_and_its_dict_comes_back():
    code = "def main(a, b):\n    print('adding', a, b)\n    return {'sum': a + b, 'items': [a, b]}"
    ran = await sandboxed(code, a=2, b=3.5)
    assert ran.result == {"sum": 5.5, "items": [2, 3.5]}
    # What the code prints is kept apart from the result.
    assert ran.logs == "adding 2 3.5\n"


async def test_an_exception_names_the_line_of_the_users_code():
    code = "def main(a):\n    total = a\n    return {'x': total / 0}\n"
    message = await failure(code, a=1)
    assert "line 3, in main: return {'x': total / 0}" in message
    assert message.endswith("ZeroDivisionError: division by zero")
    assert "runner" not in message  # the sandbox's own frames are not shown


@pytest.fixture
def local_server():
    """A TCP server on loopback that counts the connections it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[tuple] = []

    def accept() -> None:
        while True:
            try:
                connection, address = server.accept()
            except OSError:
                return
            accepted.append(address)
            connection.close()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


async def test_the_code_reaches_no_network(local_server):
    port, accepted = local_server
    socket.create_connection(("127.0.0.1", port), timeout=2).close()  # reachable from here
    deadline = time.monotonic() + 2
    while not accepted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(accepted) == 1

    code = (
        "import socket\n"
        "def main(port):\n"
        "    socket.create_connection(('127.0.0.1', port), timeout=2)\n"
        "    return {'connected': True}\n"
    )
    message = await failure(code, port=port)
    # The filter refuses the socket itself; without it, the namespace has no route.
    assert "PermissionError" in message and "line 3" in message
    time.sleep(0.1)
    assert len(accepted) == 1


async def test_the_studios_files_are_not_there():
    manage = Path(settings.BASE_DIR) / "manage.py"
    assert manage.is_file()
    code = "def main(path):\n    return {'text': open(path).read()}\n"
    assert "No such file or directory" in await failure(code, path=str(manage))

    code = (
        "import os\n"
        "def main(folders):\n"
        "    return {f: os.path.isdir(f) and os.listdir(f) for f in folders}\n"
    )
    folders = [str(settings.BASE_DIR), str(settings.VAR_DIR), "/tmp", "/etc", "/proc"]
    seen = (await sandboxed(code, folders=folders)).result
    assert seen == {
        str(settings.BASE_DIR): False,
        str(settings.VAR_DIR): False,
        "/tmp": [],  # its own, empty
        "/etc": False,
        "/proc": False,
    }


async def test_the_system_is_read_only_and_the_codes_tmp_is_its_own():
    code = (
        "def main():\n"
        "    open('/tmp/scratch.txt', 'w').write('kept')\n"
        "    return {'read': open('/tmp/scratch.txt').read()}\n"
    )
    assert (await sandboxed(code)).result == {"read": "kept"}
    assert not Path("/tmp/scratch.txt").exists()
    code = "def main():\n    open('/usr/sandbox-was-here', 'w')\n    return {}\n"
    assert "Read-only file system" in await failure(code)


async def test_a_loop_that_never_ends_is_stopped_at_the_timeout():
    started = time.monotonic()
    message = await failure("def main():\n    while True:\n        pass\n", timeout_s=1)
    assert message == "the code ran longer than 1 s and was stopped"
    assert time.monotonic() - started < 4


def _processes_named(name: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                found.append(entry.name)
        except OSError:
            continue  # ended meanwhile
    return found


async def test_nothing_the_code_started_outlives_the_timeout():
    # A process that renames itself, leaves the process group and waits without using CPU: only
    # the wall clock and the end of the PID namespace can stop it.
    name = f"sbx{uuid.uuid4().hex[:12]}"
    code = (
        "import ctypes, os, time\n"
        "def main(name):\n"
        "    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)\n"  # PR_SET_NAME
        "    os.setsid()\n"
        "    time.sleep(900)\n"
    )
    message = await failure(code, timeout_s=1, name=name)
    assert "ran longer than 1 s" in message
    deadline = time.monotonic() + 3
    while _processes_named(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_named(name) == []


async def test_memory_over_the_limit_fails_with_a_message():
    code = "def main():\n    block = bytearray(512 << 20)\n    return {'size': len(block)}\n"
    assert await failure(code, memory_mb=64) == "the code ran out of memory (the limit is 64 MB)"
    # The same code fits a larger limit.
    assert (await sandboxed(code, memory_mb=1024)).result == {"size": 512 << 20}


async def test_what_main_returns_must_be_a_small_json_dict():
    assert "must return a dict" in await failure("def main():\n    return [1]\n")
    assert "not JSON" in await failure("def main():\n    return {'s': {1, 2}}\n")
    big = "def main():\n    return {'text': 'x' * 2_000_000}\n"
    assert await failure(big) == "the result is larger than 1,024 kB"
    assert "defines no function main" in await failure("x = 1\n")
    assert "exit status 3" in await failure("import os\ndef main():\n    os._exit(3)\n")


async def test_a_cgroup_asked_for_that_cannot_be_used_runs_no_code(settings, tmp_path):
    marker = tmp_path / "ran"
    code = f"def main():\n    open({str(marker)!r}, 'w')\n    return {{}}\n"

    settings.STUDIO_SANDBOX_CGROUP = str(tmp_path / "not-a-cgroup")
    with pytest.raises(SandboxUnavailable) as caught:
        await sandboxed(code)
    assert "STUDIO_SANDBOX_CGROUP" in str(caught.value)
    assert "never runs outside the sandbox" in str(caught.value)
    assert not marker.exists()


async def test_the_result_says_what_bounds_the_sandbox():
    ran = await sandboxed("def main():\n    return {}\n")
    assert ran.confinement == confinement(settings.STUDIO_SANDBOX_CGROUP).name
    # This host (cgroup v1, or v2 without delegated controllers) uses the fallback.
    assert confinement("off").name == "seccomp + rlimits"


async def test_no_sandbox_folder_is_left_behind():
    before = set(os.listdir(tempfile.gettempdir()))
    await sandboxed("def main():\n    return {}\n")
    after = set(os.listdir(tempfile.gettempdir()))
    assert not [name for name in after - before if name.startswith("studio-sandbox-")]
