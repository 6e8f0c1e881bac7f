"""How well the demo answers: ten questions about the README (``bench/demo_questions.json``)
asked of the demo's published ``docs`` flow, on the bundled CPU model, through the real path.

It starts the isolated stack of ``bench/spine.py`` (under ``var/bench-demo/`` unless
``STUDIO_BENCH_DIR`` says otherwise; embedded PostgreSQL and Redis, a web server and a worker),
seeds the demo workspace as ``make up`` does (the README is ingested into its knowledge base by
the worker), waits for the ingestion, then runs each question and checks that the answer states
the expected facts (each group of phrases met by one of them, case ignored). It prints every
answer, whether it was cut at the token limit, and ends with ``demo answers right = N/10``::

    .venv/bin/python bench/demo_answers.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("STUDIO_BENCH_DIR", str(HERE.parent / "var" / "bench-demo"))
sys.path.insert(0, str(HERE))

import spine  # noqa: E402  (sets the bench's var dir before Django loads)

QUESTIONS = HERE / "demo_questions.json"
INGEST_TIMEOUT_S = 900
RUN_TIMEOUT_S = 600


def met(answer: str, facts: list[list[str]]) -> bool:
    text = answer.lower()
    return all(any(phrase.lower() in text for phrase in group) for group in facts)


def wait_for_ingestion() -> None:
    from knowledge.models import Document, DocumentStatus

    deadline = time.monotonic() + INGEST_TIMEOUT_S
    while True:
        states = set(Document.objects.values_list("status", flat=True))
        if states == {DocumentStatus.READY}:
            return
        if DocumentStatus.FAILED in states:
            raise SystemExit("the README's ingestion failed; see the worker's log")
        if time.monotonic() > deadline:
            raise SystemExit(f"the README was not ingested within {INGEST_TIMEOUT_S} s")
        time.sleep(1)


def ask(flow, question: str) -> tuple[str, bool, float]:
    from flows.models import RunSource
    from flows.services import run_create

    started = time.monotonic()
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": question},
        source=RunSource.STUDIO,
    )
    while run.status not in ("succeeded", "failed"):
        if time.monotonic() - started > RUN_TIMEOUT_S:
            raise SystemExit(f"no answer to {question!r} within {RUN_TIMEOUT_S} s")
        time.sleep(0.2)
        run.refresh_from_db()
    if run.status == "failed":
        return f"(failed: {run.error})", False, time.monotonic() - started
    cut = run.node_results.filter(details__finish_reason="length").exists()
    return run.outputs.get("text", ""), cut, time.monotonic() - started


def main() -> None:
    questions = json.loads(QUESTIONS.read_text())["questions"]
    stack = spine.Stack()
    try:
        spine.start_servers(stack)
        spine.migrate()
        import django

        django.setup()
        from flows.demo import demo_seed
        from flows.models import Flow

        demo_seed()
        spine.start_processes(stack)
        wait_for_ingestion()
        flow = Flow.objects.get(workspace__slug="demo", slug="docs")
        right = 0
        for number, item in enumerate(questions, 1):
            answer, cut, seconds = ask(flow, item["question"])
            ok = met(answer, item["facts"])
            right += ok
            verdict = ("right" if ok else "wrong") + (", cut" if cut else "")
            print(f"{number:2}. {item['question']}  [{verdict}, {seconds:.0f} s]")
            print("    " + " ".join(answer.split())[:400])
        print(f"\ndemo answers right = {right}/{len(questions)}")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
