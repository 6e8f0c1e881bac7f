"""``manage.py beat`` runs once across the fleet: real processes against the embedded Redis."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from studio import launch, redis_client
from workers.beat_lock import KEY

# Loaded 2-core machines take 20-30 s to start a Django process; a lock of 6 s survives a
# holder starved of the CPU for a few seconds.
START_S = 150
TTL_S = "6"


def _env(folder: Path) -> dict[str, str]:
    return {
        "REDIS_URL": settings.REDIS_URL,
        # Beat never opens the database: an address nothing listens on proves it.
        "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none",
        "STUDIO_VAR_DIR": str(folder),
        "STUDIO_REAP_INTERVAL_S": "1",
    }


class Beat:
    def __init__(self, folder: Path, name: str, *extra: str) -> None:
        self.log_path = folder / f"{name}.log"
        log = open(self.log_path, "w")  # noqa: SIM115 - closed with the process
        command = [launch.PYTHON, "manage.py", "beat", "--lock-ttl", TTL_S, *extra]
        command += ["--schedule", str(folder / f"{name}-schedule")]
        self.process = launch.start(command, _env(folder), stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, pattern: str, timeout: float = START_S) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := re.search(pattern, self.log()):
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} in the beat's log:\n{self.log()[-3000:]}")

    def wait(self, timeout: float = START_S) -> int:
        return self.process.wait(timeout)


@pytest.fixture
def beats(tmp_path):
    started: list[Beat] = []

    def start(name: str, *extra: str) -> Beat:
        beat = Beat(tmp_path, name, *extra)
        started.append(beat)
        return beat

    client = redis_client.client()
    client.delete(KEY)
    yield start
    for beat in started:
        launch.stop(beat.process)
    client.delete(KEY)


def test_second_beat_waits_or_refuses_and_takes_over_when_the_first_stops(beats):
    first = beats("first")
    first.wait_for(rf"holding the beat lock as \S+:{first.process.pid}:")
    refused = beats("refused", "--no-wait")
    standby = beats("standby")

    assert refused.wait() == 1
    assert "another beat holds the lock (" in refused.log()
    assert f":{first.process.pid}:" in refused.log()
    assert "only one beat may run across the fleet" in refused.log()
    standby.wait_for(rf"another beat holds the lock \(\S+:{first.process.pid}:\S+\); waiting")
    first.wait_for(r"Sending due task reap-stale-runs")
    assert "Sending due task" not in standby.log()
    assert "holding the beat lock" not in standby.log()

    first.process.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    # The first released its lock on the way out: the standby need not wait for it to lapse.
    standby.wait_for(rf"holding the beat lock as \S+:{standby.process.pid}:", timeout=30)
    standby.wait_for(r"Sending due task reap-stale-runs", timeout=30)


def test_beat_that_loses_its_lock_stops_at_once(beats):
    beat = beats("holder")
    beat.wait_for(r"holding the beat lock")
    beat.wait_for(r"Sending due task")
    # Another holder (a beat that took over after this one stalled past the TTL).
    redis_client.client().set(KEY, "elsewhere:1:intruder")

    assert beat.wait(30) == 3
    assert "lost the beat lock (the beat lock is now held by elsewhere:1:intruder)" in beat.log()
    assert redis_client.client().get(KEY) == b"elsewhere:1:intruder"


def test_killed_beat_lock_lapses_and_a_standby_takes_over(beats):
    first = beats("killed")
    first.wait_for(r"holding the beat lock")
    standby = beats("standby")
    standby.wait_for(r"waiting to take over")
    first.process.kill()  # no release: the lock must lapse by itself
    first.wait(30)

    standby.wait_for(rf"holding the beat lock as \S+:{standby.process.pid}:", timeout=30)


def test_lock_ttl_below_three_seconds_is_refused():
    with pytest.raises(CommandError, match="--lock-ttl must be at least 3 seconds"):
        call_command("beat", "--lock-ttl", "0.5", "--no-wait")
    assert redis_client.client().get(KEY) is None


def test_beat_without_redis_says_so(tmp_path):
    env = {**_env(tmp_path), "REDIS_URL": "redis://127.0.0.1:9/0"}
    result = subprocess.run(
        [launch.PYTHON, "manage.py", "beat", "--no-wait"],
        cwd=launch.BASE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=START_S,
    )

    assert result.returncode == 1
    assert "cannot reach Redis for the beat lock" in result.stderr
    assert not (tmp_path / "celerybeat-schedule").exists()
