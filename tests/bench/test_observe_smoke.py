"""The runs list benchmark runs end to end on a small table: it fills 10k runs with their usage
and feedback, and prints a figure line per case (no timing is asserted: the machine is
shared)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from flows.models import Run

REPO = Path(__file__).resolve().parents[2]
CASES = ("first", "deep", "filtered", "search_common", "search_rare")


def test_every_case_prints_its_figures(process_env, transactional_db, tmp_path):
    env = {**os.environ, **process_env, "STUDIO_BENCH_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "bench/observe.py", "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert Run.objects.filter(workspace__slug="bench-observe").count() == 10_000
    for case in CASES:
        line = re.search(rf"^runs_list runs=10000 case={case} .*$", result.stdout, re.M)
        assert line, result.stdout
        figures = dict(pair.split("=") for pair in line.group(0).split()[1:])
        # A page of 50, but for the rare word (in one run of 5,000: two of 10k) and for the
        # failed runs of one flow of twenty (about 25).
        expected = {"search_rare": {2}, "filtered": set(range(1, 51))}.get(case, {50})
        assert int(figures["rows"]) in expected, line.group(0)
        assert float(figures["p50_ms"]) > 0 and float(figures["p95_ms"]) > 0
