"""Online A/B: a published flow splits its traffic between two versions by weight, sticky per
conversation; who may start and stop it; the REST and OpenAI-compatible runs record their arm."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from conversations.models import Conversation
from flows.experiments import experiment_bucket, serving_version
from flows.models import Flow, FlowVersion, Run, RunSource, VersionKind
from flows.services import flow_publish, flow_version_save
from flows.services.experiments import flow_experiment_start, flow_experiment_stop
from workspaces.models import AuditEvent

STARTED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def experiment(weight: int, started: datetime = STARTED) -> Flow:
    """An unsaved flow in an experiment: the choice reads nothing from the database."""
    a, b = FlowVersion(id=11, flow_id=7, number=1), FlowVersion(id=12, flow_id=7, number=2)
    return Flow(
        id=7,
        published_version=a,
        experiment_version=b,
        experiment_weight=weight,
        experiment_started_at=started,
    )


# --- the choice --------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [10, 50, 85])
def test_the_split_follows_the_weight_over_many_keys(weight):
    flow = experiment(weight)
    arms = [serving_version(flow, f"conversation-{n}")[1] for n in range(2000)]

    share = arms.count("b") / len(arms)
    # 2,000 draws: the binomial's standard deviation is at most 1.1 points; 3.5 is > 3 sigma.
    assert abs(share - weight / 100) < 0.035, share
    assert set(arms) == {"a", "b"}


def test_a_key_keeps_its_arm_and_a_new_experiment_deals_again():
    flow = experiment(50)
    first = {key: serving_version(flow, key) for key in map(str, range(200))}

    again = {key: serving_version(flow, key) for key in map(str, range(200))}
    restarted = experiment(50, STARTED + timedelta(seconds=1))
    dealt = {key: serving_version(restarted, key)[1] for key in map(str, range(200))}

    assert again == first
    assert all(version.number == {"a": 1, "b": 2}[arm] for version, arm in first.values())
    moved = sum(dealt[key] != first[key][1] for key in first)
    assert 50 < moved < 150  # about half the keys change arm in a new experiment


def test_the_bucket_is_a_stable_hash_not_pythons_salted_one():
    # The first 8 bytes of sha256("7:2026-12-01T09:30:00+00:00:abc"), mod 100: the same in every
    # process (Python salts ``hash()`` per process) and whatever the weight.
    assert experiment_bucket(experiment(50), "abc") == 30
    assert experiment_bucket(experiment(1), "x") == 40
    assert serving_version(experiment(31), "abc")[1] == "b"
    assert serving_version(experiment(30), "abc")[1] == "a"


def test_weight_0_serves_only_a_without_an_arm_and_100_only_b():
    none = {serving_version(experiment(0), str(n)) for n in range(300)}
    everyone = {serving_version(experiment(100), str(n))[1] for n in range(300)}

    assert {(version.number, arm) for version, arm in none} == {(1, "")}
    assert everyone == {"b"}


def test_without_a_key_each_request_draws_its_arm():
    arms = {serving_version(experiment(50), None)[1] for _ in range(200)}
    assert arms == {"a", "b"}


def test_no_experiment_serves_the_published_version_without_an_arm():
    flow = experiment(50)
    flow.experiment_version = None
    assert serving_version(flow, "k") == (flow.published_version, "")


# --- starting and stopping ---------------------------------------------------------------------


def other_answer(graph: dict) -> dict:
    """The same inputs and chat binding, another prompt."""
    graph = copy.deepcopy(graph)
    next(n for n in graph["nodes"] if n["id"] == "llm_1")["config"]["prompt"] = "B: {{message}}"
    return graph


@pytest.fixture
def flow(make_flow, echo_model, owner) -> Flow:
    """Published v1, and v2 saved beside it."""
    flow = make_flow(echo_model)
    flow_version_save(flow=flow, graph=other_answer(flow.published_version.graph), user=owner)
    flow.refresh_from_db()
    return flow


def test_starting_and_stopping_are_audited(flow, owner):
    v2 = flow.versions.get(number=2)

    started = flow_experiment_start(flow=flow, version=v2, weight=30, user=owner)
    stopped = flow_experiment_stop(flow=flow, user=owner, promote=False)

    assert (started.experiment_version, started.experiment_weight) == (v2, 30)
    assert started.experiment_started_at is not None
    stopped.refresh_from_db()
    assert (stopped.experiment_version, stopped.experiment_weight) == (None, 0)
    assert stopped.experiment_started_at is None
    assert stopped.published_version.number == 1
    start = AuditEvent.objects.get(action="flow.experiment_start")
    assert start.after == {
        "experiment_version": 2,
        "experiment_weight": 30,
        "published_version": 1,
    }
    assert start.actor == owner
    stop = AuditEvent.objects.get(action="flow.experiment_stop")
    assert (stop.before, stop.after) == (
        {"experiment_version": 2, "experiment_weight": 30},
        {"promoted": None},
    )


def test_promoting_b_publishes_it_and_ends_the_experiment(flow, owner):
    v2 = flow.versions.get(number=2)
    flow_experiment_start(flow=flow, version=v2, weight=50, user=owner)

    flow_experiment_stop(flow=flow, user=owner, promote=True)

    flow.refresh_from_db()
    assert flow.published_version == v2
    assert (flow.experiment_version, flow.experiment_weight) == (None, 0)
    publish = AuditEvent.objects.filter(action="flow.publish").latest("id")
    assert publish.after == {"published_version": 2, "experiment_ended": True}


def test_publishing_another_version_ends_the_experiment(flow, owner):
    v2 = flow.versions.get(number=2)
    v3 = flow_version_save(flow=flow, graph=flow.published_version.graph, user=owner)
    flow_experiment_start(flow=flow, version=v2, weight=50, user=owner)

    flow_publish(flow=flow, version=v3, user=owner)

    flow.refresh_from_db()
    assert flow.published_version == v3
    assert flow.experiment_version is None
    assert {serving_version(flow, str(n)) for n in range(50)} == {(v3, "")}


def refusal(flow: Flow, version: FlowVersion, weight: int = 50) -> str:
    with pytest.raises(ValidationError) as refused:
        flow_experiment_start(flow=flow, version=version, weight=weight)
    flow.refresh_from_db()
    assert flow.experiment_version is None  # nothing changed
    return refused.value.messages[0]


def test_only_a_numbered_version_of_this_flow_other_than_the_published_one_can_be_b(
    flow, make_flow, echo_model
):
    graph = other_answer(flow.published_version.graph)
    draft = FlowVersion.objects.create(flow=flow, kind=VersionKind.DRAFT, graph=graph)
    variant = FlowVersion.objects.create(flow=flow, kind=VersionKind.VARIANT, graph=graph)
    other = make_flow(echo_model, slug="other").published_version

    for version in (draft, variant, other):
        assert "Only a numbered version of this flow" in refusal(flow, version)
    assert "is the published one" in refusal(flow, flow.published_version)


@pytest.mark.parametrize("weight", [0, 100, -5, 150])
def test_the_weight_is_1_to_99(flow, weight):
    assert "1 to 99 per cent" in refusal(flow, flow.versions.get(number=2), weight)


def test_an_unpublished_flow_or_a_second_experiment_is_refused(flow, make_flow, echo_model, owner):
    unpublished = make_flow(echo_model, slug="draft-only", publish=False)
    v2 = flow_version_save(flow=unpublished, graph=unpublished.versions.get().graph, user=owner)
    assert "Publish a version first" in refusal(unpublished, v2)

    flow_experiment_start(flow=flow, version=flow.versions.get(number=2), weight=50)
    v3 = flow_version_save(flow=flow, graph=flow.published_version.graph, user=owner)
    with pytest.raises(ValidationError, match="already running"):
        flow_experiment_start(flow=flow, version=v3, weight=50)


def test_a_version_that_takes_other_inputs_is_refused(flow, owner):
    graph = copy.deepcopy(flow.published_version.graph)
    graph["nodes"][0]["config"]["fields"][0]["name"] = "question"
    graph["edges"][0]["source_port"] = graph["edges"][0]["target_port"] = "question"
    graph["nodes"][1]["config"]["prompt"] = "{{question}}"
    renamed = flow_version_save(flow=flow, graph=graph, user=owner)

    assert "both arms must take the same inputs" in refusal(flow, renamed)


def test_a_version_that_answers_the_chat_from_other_nodes_is_refused(flow, owner):
    graph = copy.deepcopy(flow.published_version.graph)
    graph["nodes"][1]["id"] = "llm_2"
    for edge in graph["edges"]:
        for end in ("source", "target"):
            edge[end] = "llm_2" if edge[end] == "llm_1" else edge[end]
    renamed = flow_version_save(flow=flow, graph=graph, user=owner)

    assert "streams its chat answer from other nodes (llm_2) than the published v1 (llm_1)" in (
        refusal(flow, renamed)
    )


# --- the chat: sticky per conversation ---------------------------------------------------------


def test_each_conversation_keeps_its_arm_across_turns(client, owner, flow):
    flow = flow_experiment_start(
        flow=flow, version=flow.versions.get(number=2), weight=50, user=owner
    )
    client.force_login(owner)
    send = reverse("conversations:chat-send", args=[flow.slug])

    for n in range(12):
        assert client.post(send, {"message": f"first {n}"}).status_code == 200
    for conversation in Conversation.objects.all():
        for turn in range(2):
            sent = client.post(send, {"message": f"turn {turn}", "conversation": conversation.id})
            assert sent.status_code == 200

    arms = {}
    for conversation in Conversation.objects.all():
        runs = Run.objects.filter(id__in=conversation.messages.values("run"))
        served = {(run.arm, run.flow_version.number) for run in runs}
        assert len(served) == 1, served  # three turns, one arm
        ((arm, number),) = served
        assert number == {"a": 1, "b": 2}[arm]
        assert serving_version(flow, str(conversation.id))[1] == arm
        arms[conversation.id] = arm
    assert len(arms) == 12
    assert set(arms.values()) == {"a", "b"}  # 2^-11 to fail by chance; ids are random uuids
    assert Run.objects.filter(source=RunSource.CHAT).count() == 36


# --- the pages: who may ------------------------------------------------------------------------


def start_url(flow: Flow) -> str:
    return reverse("flows:flow-experiment-start", args=[flow.slug])


def stop_url(flow: Flow) -> str:
    return reverse("flows:flow-experiment-stop", args=[flow.slug])


def detail(flow: Flow) -> str:
    return reverse("flows:flow-detail", args=[flow.slug])


def test_an_owner_starts_and_promotes_b_on_the_flows_page(client, owner, flow):
    client.force_login(owner)
    page = client.get(detail(flow))
    assertContains(page, "Start experiment")
    assertContains(page, '<option value="2">v2</option>', html=True)

    started = client.post(start_url(flow), {"version": "2", "weight": "25"})

    assertRedirects(started, detail(flow), fetch_redirect_response=False)
    flow.refresh_from_db()
    assert (flow.experiment_version.number, flow.experiment_weight) == (2, 25)
    running = client.get(detail(flow))
    assertContains(running, "serves 25% of the conversations")
    assertContains(running, reverse("observe:flow-experiment", args=[flow.slug]))
    assertContains(running, "Version 2 now serves 25% of the traffic.")

    promoted = client.post(stop_url(flow), {"promote": "1"})

    assertRedirects(promoted, detail(flow), fetch_redirect_response=False)
    flow.refresh_from_db()
    assert (flow.published_version.number, flow.experiment_version) == (2, None)
    assertContains(client.get(detail(flow)), "The experiment ended: published version 2.")


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"version": "9", "weight": "50"}, "Assistant has no version 9."),
        ({"version": "1", "weight": "50"}, "Version 1 is the published one"),
        ({"version": "2", "weight": "0"}, "1 to 99 per cent"),
        ({"version": "2", "weight": "half"}, "Choose the weight of version b as a whole number."),
        ({"version": "", "weight": "50"}, "Choose the version as a whole number."),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(client, owner, flow, form, message):
    client.force_login(owner)

    response = client.post(start_url(flow), form, follow=True)

    assertContains(response, message)
    flow.refresh_from_db()
    assert flow.experiment_version is None


def test_stopping_when_nothing_runs_says_so(client, owner, flow):
    client.force_login(owner)
    assertContains(client.post(stop_url(flow), follow=True), "No experiment is running")


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_a_member_who_may_not_publish_gets_403_and_no_form(client, make_member, flow, role):
    v2 = flow.versions.get(number=2)
    client.force_login(make_member(role))

    page = client.get(detail(flow))
    started = client.post(start_url(flow), {"version": "2", "weight": "50"})
    flow_experiment_start(flow=flow, version=v2, weight=50)
    stopped = client.post(stop_url(flow), {"promote": "1"})

    assertNotContains(page, "Start experiment")
    assert (started.status_code, stopped.status_code) == (403, 403)
    flow.refresh_from_db()
    assert (flow.published_version.number, flow.experiment_version) == (1, v2)
    # They see that it runs, without the buttons.
    running = client.get(detail(flow))
    assertContains(running, "serves 50% of the conversations")
    assertNotContains(running, "Publish b (v2)")


def test_another_workspaces_member_gets_404(client, outsider, flow):
    client.force_login(outsider)

    assert client.post(start_url(flow), {"version": "2", "weight": "50"}).status_code == 404
    assert client.post(stop_url(flow)).status_code == 404
    flow.refresh_from_db()
    assert flow.experiment_version is None


def test_the_actions_take_only_post(client, owner, flow):
    client.force_login(owner)
    assert client.get(start_url(flow)).status_code == 405
    assert client.get(stop_url(flow)).status_code == 405


# --- the APIs record the arm -------------------------------------------------------------------


def test_rest_runs_keep_their_arm_by_idempotency_key(live_studio, api_key, flow, owner):
    """The same message to both arms, with the response cache on (temperature 0): each arm
    answers its own way, so the cache never serves one arm's answer to the other (its key is
    the model call, whose messages differ)."""
    assert flow.response_cache
    flow_experiment_start(flow=flow, version=flow.versions.get(number=2), weight=50, user=owner)
    flow.refresh_from_db()
    headers = {"Authorization": f"Bearer {api_key}"}
    url = f"{live_studio}/api/v1/flows/{flow.slug}/runs"

    keys = [f"order-{n}" for n in range(8)]
    for key in keys:
        body = {"inputs": {"message": "hello"}}
        answer = httpx.post(url, json=body, headers=headers | {"Idempotency-Key": key}, timeout=60)
        assert answer.status_code == 200, answer.text
        run = Run.objects.get(id=answer.json()["run_id"])
        expected, arm = serving_version(flow, key)
        assert (run.arm, run.flow_version, run.source) == (arm, expected, RunSource.API)
        assert answer.json()["outputs"] == {"text": "B: hello" if arm == "b" else "hello"}
    keyless = httpx.post(url, json={"inputs": {"message": "hi"}}, headers=headers, timeout=60)
    assert Run.objects.get(id=keyless.json()["run_id"]).arm in ("a", "b")


def test_openai_calls_keep_their_arm_by_user(live_studio, api_key, flow, owner):
    flow_experiment_start(flow=flow, version=flow.versions.get(number=2), weight=50, user=owner)
    flow.refresh_from_db()
    client = openai.OpenAI(base_url=f"{live_studio}/v1", api_key=api_key, max_retries=0)

    for user in ("ada", "bob", "cy", "dee", "eve", "fay"):
        for _ in range(2):
            completion = client.chat.completions.create(
                model=flow.slug, messages=[{"role": "user", "content": "hi"}], user=user
            )
            expected, arm = serving_version(flow, user)
            assert completion.choices[0].message.content == ("B: hi" if arm == "b" else "hi")
    runs = Run.objects.filter(source=RunSource.OPENAI)
    assert runs.count() == 12
    assert all(run.arm in ("a", "b") for run in runs)
    assert all(run.flow_version.number == {"a": 1, "b": 2}[run.arm] for run in runs)


def test_api_conversations_keep_their_arm_across_turns(live_studio, api_key, flow, owner):
    flow = flow_experiment_start(
        flow=flow, version=flow.versions.get(number=2), weight=50, user=owner
    )
    http = httpx.Client(
        base_url=f"{live_studio}/api/v1", headers={"Authorization": f"Bearer {api_key}"}, timeout=60
    )

    for n in range(4):
        started = http.post(f"/flows/{flow.slug}/conversations", json={"user": f"user-{n}"})
        assert started.status_code == 201, started.text
        conversation = started.json()["id"]
        _, arm = serving_version(flow, conversation)
        for text in ("one", "two"):
            sent = http.post(f"/conversations/{conversation}/messages", json={"text": text})
            assert sent.status_code == 200, sent.text
            assert sent.json()["answer"]["text"] == ("B: " if arm == "b" else "") + text
        asked = Conversation.objects.get(id=conversation).messages.values("run")
        runs = Run.objects.filter(id__in=asked)
        assert runs.count() == 2
        assert {(r.arm, r.flow_version.number, r.source) for r in runs} == {
            (arm, 2 if arm == "b" else 1, RunSource.API)
        }
