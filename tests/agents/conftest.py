"""The agents tests' model: a remote model of the workspace served by a scripted OpenAI server
(``tests/agents/scripted_model.py``), one server per test module."""

from __future__ import annotations

import pytest

from catalog.services import model_create
from tests.agents.scripted_model import ScriptedModel


@pytest.fixture(scope="module")
def server():
    scripted = ScriptedModel().start()
    yield scripted
    scripted.stop()


@pytest.fixture
def model(worker_may_call_loopback, worker, server, workspace, owner):
    return model_create(
        slug="remote",
        name="Remote",
        engine="openai_compatible",
        weights="served-model",
        settings={"base_url": f"{server.url}/v1", "retries": 0},
        workspace=workspace,
        actor=owner,
    )
