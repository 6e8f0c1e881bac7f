"""The streaming benchmark runs end to end: a real daphne streams every emitted event to every
WebSocket client, in order, none lost or repeated (no timing is asserted: the machine is shared)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_event_reaches_every_stream_in_order(process_env, transactional_db, tmp_path):
    env = {**os.environ, **process_env, "STUDIO_BENCH_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "bench/streaming.py", "--quick", "--streams", "5", "--seconds", "2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = re.search(r"^streaming n=5 .*$", result.stdout, re.MULTILINE)
    assert line, result.stdout
    figures = dict(pair.split("=") for pair in line.group(0).split()[1:])
    assert figures["connected"] == "5"
    assert figures["conn_failed"] == "0"
    # 2 s at 50 tokens/s per stream, then run.finished: each stream's sequence is whole.
    assert int(figures["emitted"]) == 5 * 100 + 5
    assert figures["received"] == figures["emitted"]
    assert (figures["gaps"], figures["repeats"], figures["late"]) == ("0", "0", "0")
