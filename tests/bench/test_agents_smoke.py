"""The agent benchmark runs end to end: agents call the calculator through a scripted model
server and the studio's real remote engine, at one and two at a time, on both paths (events and
state in memory; as the flow's agent node keeps them), and every figure line is printed (no
timing is asserted: the machine is shared)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from flows.models import NodeResult

REPO = Path(__file__).resolve().parents[2]


def test_every_level_prints_its_figures(process_env, transactional_db, tmp_path):
    env = {**os.environ, **process_env, "STUDIO_BENCH_DIR": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "bench/agents.py",
            "--runs",
            "3",
            "--steps",
            "3",
            "--calls",
            "2",
            "--concurrency",
            "1,2",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for path in ("loop", "node"):
        for concurrency in (1, 2):
            line = re.search(rf"^agents c={concurrency} path={path} .*$", result.stdout, re.M)
            assert line, result.stdout
            figures = dict(pair.split("=") for pair in line.group(0).split()[1:])
            # 3 runs of 3 steps: each step one model call the server answered, none repeated.
            assert (figures["runs"], figures["steps"], figures["model_calls"]) == ("3", "9", "9")
            for name in ("ms_per_step_p50", "p95", "steps_s", "server_ms_per_step"):
                assert float(figures[name]) > 0, line.group(0)
        target = rf"^target c=1 path={path}: ms_per_step_p50 <= 20: (met|NOT met)$"
        assert re.search(target, result.stdout, re.M), result.stdout
    # The node path stored each agent's last state on its node's row, as a worker does:
    # (3 measured + 3 warm-up runs) at each level.
    states = [r.details.get("agent_state") for r in NodeResult.objects.filter(node_id="agent_1")]
    assert len(states) == 12
    assert {(s["status"], s["steps"]) for s in states} == {("done", 3)}
