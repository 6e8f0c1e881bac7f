"""The LLM node's summarising memory against a remote model (a local server speaking OpenAI's
protocol: the network boundary), which records the requests exactly as the model received
them: the summary request, the note before the kept turns, the summary kept for the next
message, and a failed summary that leaves the turns dropped instead of failing the answer."""

from __future__ import annotations

from catalog.models import Usage
from flows.models import NodeResult, RunSource, RunStatus
from flows.nodes.memory import NOTE, SUMMARY_SYSTEM, SUMMARY_TOKENS
from flows.services import flow_create, flow_publish, run_create
from tests.catalog.remote_server import Reply, text_events
from tests.flows.helpers import wait_for_run
from tests.flows.nodes.graphs import edge, graph, node

OLD = [
    {"role": "user", "content": "I am Ada, I keep bees in Lyon and sell honey on Sundays."},
    {"role": "assistant", "content": "Nice to meet you, Ada. How many hives do you keep?"},
]
RECENT = [{"role": "user", "content": "Six."}, {"role": "assistant", "content": "Good."}]


def _flow(workspace, owner):
    config = {
        "model": "remote",
        "system": "Be brief.",
        "prompt": "{{input_1.message}}",
        "memory": "tokens",
        "memory_tokens": 5,  # about 20 characters: the recent exchange, not the old one
        "memory_overflow": "summarise",
    }
    spec = graph(node("llm_1", "llm", config), edges=[edge("llm_1.text", "output_1.text")])
    flow = flow_create(workspace=workspace, slug="bees", name="Bees", graph=spec, user=owner)
    return flow_publish(flow=flow, user=owner)


def _ask(flow, history: list[dict], message: str = "And honey?") -> NodeResult:
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": message},
        source=RunSource.API,
        history=history,
    )
    run = wait_for_run(run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return NodeResult.objects.get(run=run, node_id="llm_1")


def test_the_model_gets_a_summary_of_the_dropped_turns_before_the_kept_ones(
    remote_model, server, workspace, owner
):
    flow = _flow(workspace, owner)
    server.script(
        Reply(events=text_events("Ada keeps bees", " in Lyon.", usage=(40, 5))),
        Reply(events=text_events("Sundays.", usage=(30, 2))),
    )

    result = _ask(flow, OLD + RECENT)

    summary_request, answer_request = (r.json for r in server.requests)
    assert summary_request["max_tokens"] == SUMMARY_TOKENS
    assert summary_request["messages"][0] == {"role": "system", "content": SUMMARY_SYSTEM}
    asked = summary_request["messages"][1]["content"]
    assert f"User: {OLD[0]['content']}\n\nAssistant: {OLD[1]['content']}" in asked
    assert "Six." not in asked  # the kept turns are not summarised
    assert answer_request["messages"] == [
        {"role": "system", "content": f"Be brief.\n\n{NOTE}Ada keeps bees in Lyon."},
        *RECENT,
        {"role": "user", "content": "And honey?"},
    ]
    calls = Usage.objects.filter(run_id=result.run_id, node_id="llm_1").order_by("id")
    assert [(c.input_tokens, c.output_tokens) for c in calls] == [(40, 5), (30, 2)]
    assert (result.input_tokens, result.output_tokens) == (70, 7)
    assert result.details["memory"]["summary_tokens"] == {
        "input": 40,
        "output": 5,
        "model": "remote",
    }

    # The next message drops the same turns: the summary is reused, only the answer is asked.
    server.script(Reply(events=text_events("Yes.", usage=(30, 1))))
    more = [{"role": "user", "content": "Hm?"}, {"role": "assistant", "content": "Ok."}]

    again = _ask(flow, OLD + RECENT + more, message="Yes?")

    (answer_request,) = (r.json for r in server.requests)
    assert answer_request["messages"][0]["content"].endswith(f"{NOTE}Ada keeps bees in Lyon.")
    assert again.details["memory"]["summary"] == "cached"
    assert Usage.objects.filter(run_id=again.run_id).count() == 1


def test_a_summary_that_fails_leaves_the_turns_dropped_and_the_answer_given(
    remote_model, server, workspace, owner
):
    flow = _flow(workspace, owner)
    server.script(
        Reply(status=400, body='{"error": {"message": "context too long"}}'),
        Reply(events=text_events("Sundays.")),
    )

    result = _ask(flow, OLD + RECENT)

    assert result.outputs == {"text": "Sundays."}
    assert "could not be summarised" in result.details["memory"]["summary_error"]
    _, answer_request = (r.json for r in server.requests)
    assert answer_request["messages"] == [
        {"role": "system", "content": "Be brief."},
        *RECENT,
        {"role": "user", "content": "And honey?"},
    ]
