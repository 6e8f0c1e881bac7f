"""ReAct on the real bundled CPU model (SmolLM2-135M-Instruct) with the calculator: a published
agent run through its backing flow on the real worker. A model this small follows the protocol
only sometimes, so the test asserts what must hold whatever it writes: the run ends (an answer,
the step limit, or a failure saying why), every call has its result, a reply the protocol cannot
read is told to the model instead of stopping the run, the events are numbered without gaps, and
each step writes its usage row. The reading of malformed replies is pinned down separately with a
scripted model at the network boundary."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync

from agents.loop import AgentEnv, agent_run
from agents.models import Agent
from agents.services import agent_create, agent_publish
from agents.spec import AgentSpec, Strategy
from agents.state import Status
from agents.strategies import strategy_for
from catalog.models import Usage
from catalog.router import Candidate
from catalog.services import model_create
from flows.models import RunSource, RunStatus
from flows.services import run_create
from studio import events
from tests.agents.scripted_model import ScriptedModel, answer
from tests.flows.helpers import logged_events, wait_for_run
from tests.knowledge.helpers import engine_for

INSTRUCTIONS = "You are a calculator assistant. Reply only in the tool format."
# An earlier exchange that followed the protocol: without one, a model this small answers
# plainly (and wrongly) and never calls the tool; with it, it calls the calculator (at the time
# of writing with arguments that are not JSON, which the loop tells it to correct).
EXAMPLE = [
    {"role": "user", "content": "What is 2 + 2?"},
    {
        "role": "assistant",
        "content": "Thought: I need the calculator.\nAction: calculator\nAction Input: "
        '{"expression": "2 + 2"}',
    },
    {"role": "user", "content": "Observation: 4"},
    {"role": "assistant", "content": "Thought: I know it.\nFinal Answer: 4"},
]
MAX_STEPS = 2
ANSWER_TOKENS = 32  # a step's answer: enough for a Thought, an Action and its input


@pytest.fixture
def smollm2(db):
    return model_create(
        slug="smollm2", name="SmolLM2", engine="cpu", weights="bundled:smollm2-135m-instruct"
    )


def test_auto_picks_react_for_the_cpu_engine(smollm2):
    assert strategy_for(Strategy.AUTO, smollm2).name == "react"


def _tool_error(data: dict) -> bool:
    return bool((data.get("details") or {}).get("error"))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_react_on_the_cpu_model_ends_and_keeps_its_trace_whole(worker, workspace, owner, smollm2):
    spec = {
        "instructions": {"text": INSTRUCTIONS},
        "model": "smollm2",
        "strategy": "react",
        "tools": [{"tool": "calculator"}],
        "limits": {"max_steps": MAX_STEPS, "max_answer_tokens": ANSWER_TOKENS, "max_seconds": 60},
    }
    agent = agent_create(workspace=workspace, name="Maths", slug="maths", spec=spec, actor=owner)
    agent_publish(agent=agent, actor=owner)
    flow = Agent.objects.get(id=agent.id).flow
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "Use the calculator to compute 17 * 23."},
        source=RunSource.STUDIO,
        user=owner,
        history=EXAMPLE,
    )
    # The first use of the bundled model converts it (about 40 s on two cores), once per
    # model folder; then it loads in seconds.
    run = wait_for_run(run.id, timeout=180)

    logged = logged_events(run.id)
    assert [e["seq"] for e in logged] == list(range(1, len(logged) + 1))
    finished = [e["data"] for e in logged if e["type"] == events.AGENT_FINISHED]
    if run.status == RunStatus.SUCCEEDED:
        (end,) = finished
        assert end["outcome"] in ("done", "limited")
        assert 1 <= end["steps"] <= MAX_STEPS
        if end["outcome"] == "limited":
            assert end["reason"] == "max_steps"
            assert f"limit of {MAX_STEPS} steps" in run.outputs["text"]
    else:
        # A model that could not answer fails the run with the reason, never silently.
        assert run.status == RunStatus.FAILED and run.error.strip(), run.error

    # Every call has its result, in order, and a call the protocol could not carry out (not a
    # tool, arguments that are not a JSON object the calculator takes) is told to the model.
    calls = [e["data"] for e in logged if e["type"] == events.TOOL_CALL]
    results = {e["data"]["key"]: e["data"] for e in logged if e["type"] == events.TOOL_RESULT}
    assert [c["key"] for c in calls] == list(results)
    for call in calls:
        result = results[call["key"]]
        assert result["content"].strip()
        wellformed = call["tool"] == "calculator" and isinstance(call["arguments"], dict)
        if not wellformed:
            assert _tool_error(result), (call, result)

    # One usage row per model call (step), for the agent's run.
    steps = [e["data"]["step"] for e in logged if e["type"] == events.AGENT_STEP]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) <= MAX_STEPS
    rows = Usage.objects.filter(run_id=run.id).order_by("id")
    if finished:
        assert rows.count() == finished[0]["steps"]
    assert [r.node_id for r in rows] == [f"step-{n}" for n in range(1, rows.count() + 1)]
    assert all(r.model_slug == "smollm2" and 0 < r.output_tokens <= ANSWER_TOKENS for r in rows)


# --- malformed replies, scripted ---------------------------------------------------------------


@pytest.fixture
def scripted(settings):
    settings.STUDIO_EGRESS_ALLOW_MODELS = ["127.0.0.1"]
    server = ScriptedModel().start()
    yield server
    server.stop()


def test_a_reply_the_protocol_cannot_read_is_corrected_not_a_crash(scripted, workspace, owner):
    remote = model_create(
        slug="remote",
        name="Remote",
        engine="openai_compatible",
        weights="served-model",
        settings={"base_url": f"{scripted.url}/v1", "retries": 0},
        workspace=workspace,
        actor=owner,
    )
    scripted.plan(
        answer("Thought: multiply.\nAction: calculator\nAction Input: seventeen times 23"),
        answer("Action: abacus\nAction Input: {}"),
        answer('Action: calculator\nAction Input: {"expression": "17 * 23"}'),
        answer("Thought: done.\nFinal Answer: 391"),
    )
    logged: list[tuple[str, dict]] = []

    async def emit(type_: str, data: dict) -> None:
        logged.append((type_, data))

    env = AgentEnv(
        workspace_id=workspace.id,
        user_id=owner.id,
        run_id="run-react",
        candidates=[Candidate(remote, "named by the agent")],
        engine_for=engine_for(),
        emit=emit,
    )
    spec = AgentSpec.model_validate(
        {"model": "remote", "strategy": "react", "tools": [{"tool": "calculator"}]}
    )
    question = [{"role": "user", "content": "What is 17 * 23?"}]
    outcome = async_to_sync(agent_run)(spec, question, env=env)

    assert (outcome.status, outcome.answer) == (Status.DONE, "391")
    results = [d for t, d in logged if t == events.TOOL_RESULT]
    assert [_tool_error(r) for r in results] == [True, True, False]
    assert "391" in results[2]["content"]
    # Each correction went back to the model as the next step's Observation.
    second, third = scripted.messages(1), scripted.messages(2)
    assert second[-1]["content"].startswith("Observation: ")
    assert "JSON" in second[-1]["content"] or "expression" in second[-1]["content"]
    assert "no tool named 'abacus'" in third[-1]["content"]
    assert json.loads(json.dumps(outcome.state.model_dump(mode="json")))["steps"] == 4
