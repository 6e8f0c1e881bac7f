"""The agents tests' model: a remote model of the workspace served by a scripted OpenAI server
(``tests/agents/scripted_model.py``), one server per test module."""

from __future__ import annotations

import pytest

from tests.agents.scripted_model import ScriptedModel, remote_model


@pytest.fixture(scope="module")
def server():
    scripted = ScriptedModel().start()
    yield scripted
    scripted.stop()


@pytest.fixture
def model(worker_may_call_loopback, worker, server, workspace, owner):
    return remote_model(server, workspace, owner)
