"""A run's tokens through the real worker: a model that makes them at once has them logged in
few events, in order, all before its ``node.finished``."""

from __future__ import annotations

from flows.models import RunSource, RunStatus
from flows.services import run_create
from tests.flows.helpers import logged_events, wait_for_run

WORDS = " ".join(f"w{i}" for i in range(200))


def test_tokens_made_at_once_share_few_events_in_order(worker, echo_model, make_flow):
    flow = make_flow(echo_model, max_tokens=256)
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": WORDS},
        source=RunSource.STUDIO,
    )
    run = wait_for_run(run.id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    log = logged_events(run.id)
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    tokens = [e for e in log if e["type"] == "token"]
    assert "".join(e["data"]["text"] for e in tokens) == WORDS == run.outputs["text"]
    assert tokens[0]["data"] == {"text": "w0"}  # the first token goes out at once, alone
    assert len(tokens) < 20  # not one event per token (200)
    kinds = [(e["type"], e["node"]) for e in log]
    finished = kinds.index(("node.finished", "llm_1"))
    assert kinds[finished - len(tokens) : finished] == [("token", "llm_1")] * len(tokens)
    assert log[finished]["data"]["output_tokens"] == 200
