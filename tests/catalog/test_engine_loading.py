"""Engines of different kinds loading at once in one worker process, from cold imports: chat
models (the CPU engine, transformers) and rerankers (sentence-transformers), as when the first
chat of a fresh start meets the ingestion of the demo knowledge base. Without the lock on such
loads (``catalog.engines.base.TORCH_LOADS``) a load fails with "cannot import name
'AutoModelForCausalLM' from 'transformers'": this test failed 4 times in 4 without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# In a fresh interpreter, so that torch and the Hugging Face libraries are imported for the first
# time by the two loading threads themselves, released together.
LOAD_FOUR = """
import json, os, sys, threading
os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
import django
django.setup()
from catalog.engines.base import EngineSpec
from workers.resident import Resident

cold = not any(name in sys.modules for name in ("torch", "transformers", "sentence_transformers"))
resident = Resident()
# Two of each kind, as separate catalog entries: four loads racing through the same imports.
specs = [
    EngineSpec(engine="cpu", weights=sys.argv[1], task="chat"),
    EngineSpec(engine="sentence_transformers", weights=sys.argv[2], task="rerank"),
    EngineSpec(engine="cpu", weights=sys.argv[1], task="chat", settings={"threads": 1}),
    EngineSpec(engine="sentence_transformers", weights=sys.argv[2], task="rerank", revision=""),
]
start = threading.Barrier(len(specs))
errors = []

def load(model_id, spec):
    start.wait()
    try:
        resident._load(model_id, spec)
    except BaseException as exc:
        errors.append(f"{spec.engine}: {type(exc).__name__}: {exc}")

threads = [threading.Thread(target=load, args=(i, s)) for i, s in enumerate(specs)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"cold": cold, "errors": errors, "loads": resident.loads}))
"""


# Fresh processes at once: the race is between threads of one, and each is a new chance of it.
PROCESSES = 3


@pytest.mark.slow
def test_engines_of_different_kinds_load_at_once_from_cold_imports(
    process_env, tiny_model_dir, tiny_reranker_dir
):
    command = [sys.executable, "-c", LOAD_FOUR, str(tiny_model_dir), str(tiny_reranker_dir)]
    started = [
        subprocess.Popen(
            command,
            cwd=REPO,
            env=process_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    for process in started:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        outcome = json.loads(stdout.strip().splitlines()[-1])
        assert outcome["cold"], "the libraries were imported before the threads started"
        assert outcome["errors"] == []
        assert outcome["loads"] == 4
