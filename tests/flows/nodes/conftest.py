"""A remote OpenAI-compatible model whose answers a test scripts (a local HTTP server: the
network boundary), served through the worker, for the model nodes' tests."""

from __future__ import annotations

import pytest

from catalog.services import model_create
from tests.catalog.remote_server import RemoteServer


@pytest.fixture(scope="module")
def server():
    remote = RemoteServer().start()
    yield remote
    remote.stop()


@pytest.fixture
def remote_model(worker_may_call_loopback, worker, server, workspace):
    return model_create(
        slug="remote",
        name="Remote",
        engine="openai_compatible",
        weights="served-model",
        settings={"base_url": f"{server.url}/v1", "retries": 0},
        workspace=workspace,
    )
