"""The SciFact dataset the bench reads: its abstracts, their sentences and its claims."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.retrieval import REPO


def dataset_dir() -> Path:
    given = os.environ.get("BEIR_DATASET_DIR")
    root = Path(given) if given else REPO.parent / "shared" / "datasets" / "scifact"
    if not (root / "corpus.jsonl").exists() and (root / "scifact" / "corpus.jsonl").exists():
        root = root / "scifact"
    if not (root / "corpus.jsonl").exists() or not (root / "queries.jsonl").exists():
        raise SystemExit(f"no SciFact corpus.jsonl and queries.jsonl in {root}")
    return root


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


@dataclass
class Dataset:
    documents: list[tuple[str, str]]  # (id, title + blank line + abstract)
    sentences: list[str]
    queries: list[str]


def load_dataset() -> Dataset:
    root = dataset_dir()
    documents, sentences = [], []
    for row in read_jsonl(root / "corpus.jsonl"):
        title, text = row.get("title", "").strip(), row.get("text", "").strip()
        documents.append((str(row["_id"]), f"{title}\n\n{text}"))
        sentences += [s for s in re.split(r"(?<=[.!?])\s+", f"{title}. {text}") if len(s) > 3]
    queries = [row["text"] for row in read_jsonl(root / "queries.jsonl") if row.get("text")]
    return Dataset(documents=documents, sentences=sentences, queries=queries)
