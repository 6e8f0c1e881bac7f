"""The GPU engine costs the CPU install nothing: vLLM is never imported, yet vLLM catalog entries
are validated, queued on a GPU queue and dispatched there, all without vLLM installed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from pydantic import ValidationError as PydanticValidationError

from catalog.engines import engine_class
from catalog.engines.base import Adapter, EngineError, EngineSpec
from catalog.selectors.models import model_queue
from catalog.services import model_create

REPO = Path(__file__).resolve().parents[2]


def vllm_module():
    # Through the registry: importing an engine module first would stop its discovery of the rest.
    return importlib.import_module(engine_class("vllm").__module__)


# Everything a web process or a worker imports on the way to serving a run, then every engine's
# settings schema, a vLLM entry's settings validated and its queue computed.
IMPORT_EVERYTHING = """
import json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
import django
django.setup()
import studio.urls, studio.celery, workers.tasks, workers.resident, flows.runtime.executor
import catalog.inference
from catalog.engines import engine_class, engine_kinds
kinds = engine_kinds()
schemas = [engine_class(kind).Settings.__name__ for kind in kinds]
vllm = engine_class("vllm")
vllm.Settings.model_validate({"queue": "gpu.big", "enable_lora": True, "max_lora_rank": 64})
print(json.dumps({
    "kinds": kinds,
    "queue": vllm.queue_for({"queue": "gpu.big"}),
    "vllm_modules": sorted(m for m in sys.modules if m == "vllm" or m.startswith("vllm.")),
}))
"""


def test_the_default_install_never_imports_vllm():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"cpu", "echo", "vllm"} <= set(report["kinds"])
    assert report["queue"] == "gpu.big"
    assert report["vllm_modules"] == []


def settings(**values):
    return engine_class("vllm").Settings.model_validate(values)


@pytest.mark.parametrize("queue", ["gpu", "gpu.llama", "gpu.llama-3.1-8b", "gpu.A_100"])
def test_vllm_entries_take_a_gpu_queue(queue):
    assert settings(queue=queue).queue == queue
    assert engine_class("vllm").queue_for({"queue": queue}) == queue


@pytest.mark.parametrize("queue", ["inference", "flows", "gpu.", "gpux", "gpu.a b", "gpu..x", ""])
def test_vllm_refuses_a_queue_that_is_not_a_gpu_queue(queue):
    with pytest.raises(PydanticValidationError, match="gpu"):
        settings(queue=queue)


def test_a_vllm_entry_without_a_queue_goes_to_the_gpu_queue():
    assert engine_class("vllm").queue_for({}) == "gpu"


@pytest.mark.parametrize(
    "values",
    [
        {"gpu_memory_utilization": 0},
        {"gpu_memory_utilization": 1.5},
        {"tensor_parallel_size": 0},
        {"max_model_len": 8},
        {"max_num_seqs": 0},
        {"max_loras": 0},
        {"max_lora_rank": 12},  # not a rank vLLM accepts
        {"tool_call_parser": "Hermes!"},
        {"swap_space": 4},  # unknown settings are refused, not ignored
    ],
)
def test_vllm_settings_are_bounded(values):
    with pytest.raises(PydanticValidationError):
        settings(**values)


def test_engine_args_default_the_context_to_the_catalog_entry():
    spec = EngineSpec("vllm", "Qwen/Qwen2.5-7B-Instruct", context_length=8192)
    args = vllm_module().engine_args(spec, settings())
    assert args == {
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "revision": None,
        "quantization": None,
        "dtype": "auto",
        "max_model_len": 8192,
        "gpu_memory_utilization": 0.9,
        "tensor_parallel_size": 1,
        "enforce_eager": False,
        "enable_prefix_caching": True,
        "enable_lora": False,
    }


def test_engine_args_carry_the_entry_and_its_settings():
    spec = EngineSpec(
        "vllm", "/models/llama", revision="abc123", quantization="awq", dtype="bfloat16"
    )
    args = vllm_module().engine_args(
        spec,
        settings(
            max_model_len=4096, max_num_seqs=64, enable_lora=True, max_loras=4, max_lora_rank=64
        ),
    )
    assert (args["revision"], args["quantization"], args["dtype"]) == ("abc123", "awq", "bfloat16")
    assert (args["max_model_len"], args["max_num_seqs"]) == (4096, 64)
    assert (args["enable_lora"], args["max_loras"], args["max_lora_rank"]) == (True, 4, 64)


def test_lora_names_differ_when_a_slug_is_reused_for_new_weights():
    old = Adapter(id=3, name="support", weights="/a")
    new = Adapter(id=9, name="support", weights="/b")
    lora_name = vllm_module().lora_name
    assert lora_name(old) != lora_name(new)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_building_a_vllm_engine_without_vllm_says_how_to_install_it():
    with pytest.raises(EngineError, match=r"pip install -e '\.\[gpu\]'"):
        engine_class("vllm")(EngineSpec("vllm", "/models/llama"))


def test_catalog_refuses_bad_vllm_settings(db, workspace):
    with pytest.raises(ValidationError) as caught:
        model_create(
            slug="llama",
            name="Llama",
            engine="vllm",
            weights="/models/llama",
            settings={"queue": "inference"},
            workspace=workspace,
        )
    assert "settings" in caught.value.message_dict


def test_a_vllm_model_is_served_from_its_gpu_queue(db, workspace):
    model = model_create(
        slug="llama",
        name="Llama",
        engine="vllm",
        weights="/models/llama",
        settings={"queue": "gpu.big", "enable_lora": True},
        workspace=workspace,
    )
    assert model_queue(model) == "gpu.big"


def test_the_executor_dispatches_a_vllm_node_to_its_gpu_queue(db, workspace, make_flow):
    """Only ``execute_node`` reaches a GPU queue, and it names the queue itself."""
    from flows.models import NodeResult, NodeStatus, RunSource
    from flows.runtime import executor
    from flows.services import run_create
    from studio.celery import app

    model = model_create(
        slug="llama",
        name="Llama",
        engine="vllm",
        weights="/models/llama",
        settings={"queue": "gpu.dispatch-test"},
        workspace=workspace,
    )
    flow = make_flow(model)
    run = run_create(
        flow=flow, version=flow.published_version, inputs={"message": "hi"}, source=RunSource.API
    )
    with app.connection_for_write() as connection:
        queue = connection.default_channel.client
        queue.delete("gpu.dispatch-test")
        try:
            executor.run_advance(run.id)  # the input node runs inline, the LLM node is dispatched
            node = NodeResult.objects.get(run=run, node_id="llm_1")
            assert (node.status, node.queue) == (NodeStatus.PENDING, "gpu.dispatch-test")
            [message] = queue.lrange("gpu.dispatch-test", 0, -1)
            body = json.loads(message)
            assert body["headers"]["task"] == "workers.tasks.execute_node"
            assert body["headers"]["argsrepr"] == repr([str(run.id), "llm_1"])
        finally:
            queue.delete("gpu.dispatch-test")
