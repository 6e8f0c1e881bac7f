"""How the studio's processes are started: one place for ``make up``, the tests and ``bench/``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def web_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [PYTHON, "-m", "daphne", "-b", host, "-p", str(port), "studio.asgi:application"]


def worker_command(
    queues: list[str],
    *,
    concurrency: int = 8,
    beat: bool = True,
    name: str = "studio",
    schedule: Path | None = None,
    pool: str = "threads",
) -> list[str]:
    """A Celery worker; by default a thread pool sharing one process's resident engines.

    ``beat`` embeds the scheduler (one machine only); a fleet runs ``manage.py beat`` once.
    """
    command = [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "studio",
        "worker",
        "--queues",
        ",".join(queues),
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--hostname",
        f"{name}@%h",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        command += ["--beat", "--schedule", str(schedule or _var() / "celerybeat-schedule")]
    return command


def _var() -> Path:
    from studio.embedded import var_dir

    return var_dir()


def start(command: list[str], env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=BASE_DIR, env={**os.environ, **(env or {})}, **kwargs)


def wait_for_port(
    port: int, host: str = "127.0.0.1", timeout: float = 60, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen | None, timeout: float = 10) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
