"""``manage.py worker`` starts one Celery pool for the queues named, and refuses others."""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from studio import launch

START_S = 150


def _env(folder) -> dict[str, str]:
    return {
        "REDIS_URL": settings.REDIS_URL,
        "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none",
        "STUDIO_VAR_DIR": str(folder),
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queues", "flows,nope"], "unknown queue 'nope'"),
        (["--queues", "gpu..x"], "unknown queue 'gpu..x'"),
        (["--queues", " , "], "--queues names no queue"),
        (["--queues", "flows", "--concurrency", "0"], "--concurrency must be at least 1"),
        (["--queues", "gpu.llama", "--pool", "prefork"], "a GPU queue needs --pool threads"),
        (["--queues", "flows", "--pool", "gevent"], "invalid choice: 'gevent'"),
    ],
)
def test_worker_refuses_bad_queues_and_pools(args, message):
    # In this process: a refusal comes before the command replaces itself with Celery.
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("worker", *args)


def test_worker_serves_only_the_queues_named(tmp_path):
    # Queues of their own: this worker has no database and must not take other tests' tasks.
    first, second = (f"gpu.deploy-{secrets.token_hex(4)}" for _ in range(2))
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        process = launch.start(
            [
                launch.PYTHON,
                "manage.py",
                "worker",
                "--queues",
                f"{first},{second}",
                "--concurrency",
                "2",
            ],
            _env(tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_S
        while " ready." not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        banner = log_path.read_text()
        # The command replaced itself with Celery (os.execv): signals reach the worker directly.
        command = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert command[1:4] == [b"-m", b"celery", b"-A"]
        assert b"--beat" not in command
        # Named after the first queue, dots made dashes (a Celery node name).
        assert f"{first.replace('.', '-')}@" in banner
        assert f".> {first} " in banner
        assert f".> {second} " in banner
        assert ".> flows " not in banner
        assert "concurrency: 2 (thread)" in banner
    finally:
        launch.stop(process)
    assert process.returncode == 0
