"""The parts of the retrieval speed benchmark (``bench/retrieval_speed.py`` runs them).

Importing this package points the studio at the bench's own data before anything from studio
reads its settings: the bench's database never mixes with var/pg or var/redis, and the debug
cursor (which records every query) stays off. Each part imports Django's models inside its
functions, after ``Stack.start`` has set Django up.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
# ``BENCH_RETRIEVAL_DIR`` moves it, so that two people on one machine never share a database.
BENCH_DIR = Path(os.environ.get("BENCH_RETRIEVAL_DIR") or REPO / "var" / "bench-retrieval-speed")

os.environ["STUDIO_VAR_DIR"] = str(BENCH_DIR)
os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
os.environ["STUDIO_DEBUG"] = "0"
os.environ.setdefault("STUDIO_LOG_LEVEL", "WARNING")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights"
