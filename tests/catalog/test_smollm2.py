"""The real bundled model, end to end: SmolLM2-135M-Instruct answers a simple question."""

from __future__ import annotations

import pytest

from catalog.services import model_create
from flows.models import RunSource, RunStatus
from flows.services import run_create
from tests.flows.helpers import wait_for_run


@pytest.mark.slow
def test_smollm2_knows_the_capital_of_france(worker, make_flow):
    model = model_create(
        slug="smollm2", name="SmolLM2", engine="cpu", weights="bundled:smollm2-135m-instruct"
    )
    flow = make_flow(model, max_tokens=24)
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "What is the capital of France?"},
        source=RunSource.STUDIO,
    )
    # The first use converts the bundled GGUF (about 40 s on two cores); then it loads in seconds.
    run = wait_for_run(run.id, timeout=240)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "Paris" in run.outputs["text"]
    assert 0 < run.usage["output_tokens"] <= 24
