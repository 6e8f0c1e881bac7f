"""Inline nodes run inside the executor's task on a worker thread, where Celery's time limits do
nothing: no template, however it loops, holds a thread past its deadline; a run of slow inline
nodes stops at the run's deadline; and a pass of the executor leaves the thread after its share,
going on in a fresh task. With the real worker (four threads) and its reaper."""

from __future__ import annotations

import json
import time

from django.utils import timezone

from flows.models import NodeResult, Run, RunSource, RunStatus
from flows.nodes import node_types
from flows.runtime import executor
from flows.services import flow_create, flow_publish, run_create
from tests.flows.helpers import wait_for_run
from tests.flows.test_engine import (
    assign,
    edge,
    iteration_over_items,
    node,
    output,
    text_input,
)
from tests.flows.test_waiting_nodes import approval_graph, wait_for_status

# A billion empty iterations over a 1,000-character message: days with three more characters.
NESTED_LOOPS = (
    "{% for a in input_1.message %}{% for b in input_1.message %}"
    "{% for c in input_1.message %}{% endfor %}{% endfor %}{% endfor %}"
)


def letter_graph(template: str, **policy) -> dict:
    letter = node("letter", "template", {"template": template}, **policy)
    return {
        "nodes": [text_input(), letter, output("text")],
        "edges": [edge("letter", "text", "output_1", "text")],
    }


def published(workspace, owner, slug: str, graph: dict):
    flow = flow_create(workspace=workspace, slug=slug, name=slug, graph=graph, user=owner)
    return flow_publish(flow=flow, user=owner)


def start(flow, **inputs) -> Run:
    return run_create(
        flow=flow, version=flow.published_version, inputs=inputs, source=RunSource.STUDIO
    )


def test_templates_that_cannot_finish_fail_in_time_and_the_worker_stays_responsive(
    worker, workspace, owner
):
    waiting = start(published(workspace, owner, "review", approval_graph()), message="invoice")
    wait_for_status(waiting.id, RunStatus.WAITING)
    hostile = published(workspace, owner, "hostile", letter_graph(NESTED_LOOPS))
    friendly = published(workspace, owner, "friendly", letter_graph("Hi {{ input_1.message }}"))

    began = time.monotonic()
    # More runs than the worker has threads, then a friendly run behind them.
    runs = [start(hostile, message="x" * 1000) for _ in range(6)]
    ok = start(friendly, message="Ada")
    # And a run past its deadline, for the reaper, whose task queues behind them too.
    Run.objects.filter(id=waiting.id).update(deadline_at=timezone.now())

    ok = wait_for_run(ok.id, timeout=30)
    assert ok.status == RunStatus.SUCCEEDED, ok.error
    assert ok.outputs == {"text": "Hi Ada"}
    assert time.monotonic() - began < 15
    waiting = wait_for_run(waiting.id, timeout=30)
    assert waiting.error.startswith("timed out: the run did not finish within")
    for run in runs:
        run = wait_for_run(run.id, timeout=30)
        assert run.status == RunStatus.FAILED
        # The render's own check names the line; a renderer killed a moment later cannot.
        assert run.error.startswith("node 'letter' failed: ")
        assert run.error.endswith("rendering took longer than 2 s")
    assert time.monotonic() - began < 20


def iteration_graph(template: str, **policy) -> dict:
    """An iteration over the ``items`` input whose node renders ``template`` per item."""
    letter = node("letter", "template", {"template": template}, parent="each", **policy)
    return iteration_over_items(letter, "{{letter.text}}")


def test_a_run_of_slow_inline_nodes_stops_at_the_run_deadline(worker, workspace, owner, settings):
    settings.STUDIO_RUN_TIMEOUT_S = 3  # the deadline is fixed when the run is created
    # Twenty items of two seconds each, every one turned into a default by the node's policy:
    # one pass of the executor would hold the thread and the run's row for forty seconds.
    slow = "{% for a in each.item %}{% for b in each.item %}{% for c in each.item %}"
    slow += "{% endfor %}{% endfor %}{% endfor %}"
    graph = iteration_graph(slow, on_error="default", default={"text": "gave up"})
    began = time.monotonic()
    run = start(published(workspace, owner, "slow-items", graph), items=["x" * 1000] * 20)

    run = wait_for_run(run.id, timeout=30)
    assert run.status == RunStatus.FAILED
    # Whichever notices first ends it: the pass, or the reaper.
    assert run.error.startswith("timed out: the run did not finish within 3 s")
    assert time.monotonic() - began < 9
    assert NodeResult.objects.filter(run=run, node_id__startswith="letter[").count() < 5


def test_a_pass_leaves_the_thread_after_its_share_and_the_run_goes_on(
    db, workspace, owner, settings
):
    # In this process, uncommitted: no worker sees the run, and the test plays each pass's
    # follow-up task itself.
    settings.STUDIO_RUN_PASS_S = 0  # every pass has spent its share after its first node
    flow = published(workspace, owner, "passes", letter_graph("Hi {{ input_1.message }}"))
    run = start(flow, message="Ada")

    started = []
    for _ in range(3):
        executor.run_advance(run.id)
        started.append(sorted(NodeResult.objects.filter(run=run).values_list("node_id", flat=True)))
    assert started == [["input_1"], ["input_1", "letter"], ["input_1", "letter", "output_1"]]
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "Hi Ada"}


def test_a_guardrail_blocks_a_text_of_megabytes_at_once_and_the_worker_stays_free(
    worker, workspace, owner
):
    # 500 denied words searched one by one over the text: 7.6 s a megabyte on one thread. A
    # text input stops at 200,000 characters, but a list (or an upstream node) reaches the
    # guardrail as all the text it makes.
    words = [f"denied{n:03d}word" for n in range(500)]
    guard = node("guard", "guardrail", {"deny_words": words, "mask_pii": []})
    graph = {
        "nodes": [text_input("message", "any"), guard, output("blocked")],
        "edges": [
            edge("input_1", "message", "guard", "text"),
            edge("guard", "blocked", "output_1", "blocked"),
        ],
    }
    friendly = published(workspace, owner, "friendly", letter_graph("Hi {{ input_1.message }}"))
    began = time.monotonic()
    runs = [
        start(published(workspace, owner, f"guard-{n}", graph), message=["lorem ipsum"] * 250_000)
        for n in range(2)
    ]
    ok = start(friendly, message="Ada")

    ok = wait_for_run(ok.id, timeout=30)
    assert ok.status == RunStatus.SUCCEEDED, ok.error
    for run in runs:
        run = wait_for_run(run.id, timeout=30)
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.outputs == {
            "blocked": "the text is longer than 200000 characters, the most a guardrail checks"
        }
    assert time.monotonic() - began < 15


def test_an_iteration_over_items_given_as_text_parses_them_once_per_pass():
    # The executor asks for the open instances again after each finished item: parsing the
    # whole list each time took minutes for 5,000 items of this size.
    kind = node_types()["iteration"]
    config = kind.Config(result="{{letter.text}}")
    item = "lorem ipsum " * 50
    inputs = {"items": json.dumps([{"n": n, "text": item} for n in range(5_000)])}
    started = time.monotonic()
    state = kind.begin(config, inputs)
    while opened := kind.open_instances(config, state, inputs):
        for index, inner in opened:
            assert inner == {"item": {"n": index, "text": item}, "index": index}
            state = kind.instance_done(config, state, index, {"letter.text": index})
    assert time.monotonic() - started < 5
    assert kind.finished(config, state).outputs == {"results": list(range(5_000)), "count": 5_000}


def test_a_loop_whose_exit_patterns_crawl_fails_at_one_budget_for_all_its_rounds(
    worker, workspace, owner
):
    """Twenty crawling patterns at 0.1 s each, tested after each of 100 rounds: 200 s before;
    now the rounds share one budget, and the loop fails naming it."""
    crawl = {"variable": "draft", "operator": "matches", "value": r"(x+x+)+y"}
    graph = {
        "nodes": [
            text_input("start", "text"),
            node(
                "repeat",
                "loop",
                {
                    "variables": [
                        {"name": "draft", "type": "text", "initial": "{{input_1.start}}"}
                    ],
                    "updates": {"draft": "{{keep.value}}"},
                    "exit": {"logic": "or", "conditions": [crawl] * 20},
                    "max_rounds": 100,
                },
            ),
            assign("keep", "{{repeat.draft}}", parent="repeat"),
            output("draft", "rounds"),
        ],
        "edges": [
            edge("repeat", "draft", "output_1", "draft"),
            edge("repeat", "rounds", "output_1", "rounds"),
        ],
    }
    flow = flow_publish(
        flow=flow_create(workspace=workspace, slug="crawl", name="Crawl", graph=graph, user=owner),
        user=owner,
    )
    started = time.monotonic()
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"start": "x" * 5_000},
        source=RunSource.STUDIO,
    )
    run = wait_for_run(run.id, timeout=60)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("node 'repeat' failed: round ")
    assert run.error.endswith("the regular expressions took longer than 1 s in all")
    assert time.monotonic() - started < 30
