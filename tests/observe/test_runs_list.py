"""The runs list: who sees which runs, filters, full-text search, keyset pages, bad input."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.services import agent_create, agent_publish
from catalog.models import Usage
from conversations.models import Conversation, Message
from flows.models import Flow, Run
from observe import selectors
from observe.selectors import RunFilters

pytestmark = pytest.mark.django_db


def _run(flow: Flow, *, text: str = "hello", answer: str = "hi", **fields) -> Run:
    return Run.objects.create(
        workspace=flow.workspace,
        flow=flow,
        flow_version=flow.published_version,
        inputs={"message": text},
        outputs={"text": answer},
        deadline_at=timezone.now() + timedelta(hours=1),
        **fields,
    )


@pytest.fixture
def flow(make_flow, echo_model):
    return make_flow(echo_model, slug="assistant")


@pytest.fixture
def agent(workspace, owner, echo_model):
    made = agent_create(
        workspace=workspace,
        name="Maths",
        slug="maths",
        spec={"model": echo_model.slug},
        actor=owner,
    )
    agent_publish(agent=made, actor=owner)
    made.refresh_from_db()
    return made


def _ids(response) -> list[str]:
    return [row.run.id for row in response.context["page"].rows]


def test_a_member_sees_the_runs_of_the_flows_they_may_view_and_never_another_workspaces(
    client, make_member, owner, flow, make_flow, echo_model, outsider
):
    from workspaces.sharing import object_grant

    hidden = make_flow(echo_model, slug="hidden")
    seen, unseen = _run(flow), _run(hidden)
    limited = make_member("viewer", limited=True)
    object_grant(obj=flow, subject=limited, level="view", actor=owner)

    client.force_login(limited)
    page = client.get(reverse("observe:run-list"))
    assert page.status_code == 200
    assert _ids(page) == [seen.id]

    client.force_login(owner)
    assert set(_ids(client.get(reverse("observe:run-list")))) == {seen.id, unseen.id}

    client.force_login(outsider)
    page = client.get(reverse("observe:run-list"))
    assert page.status_code == 200
    assert page.context["page"].rows == []
    assert client.get(reverse("observe:flow-run-list", args=[flow.slug])).status_code == 404


def test_the_list_shows_cost_ttft_tokens_who_feedback_and_a_trace_link(
    client, owner, flow, workspace, django_assert_max_num_queries
):
    now = timezone.now()
    run = _run(
        flow,
        status="succeeded",
        source="widget",
        created_by=owner,
        usage={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        started_at=now - timedelta(seconds=2),
        finished_at=now,
    )
    Usage.objects.create(
        workspace=workspace, model_slug="echo", run_id=run.id, cost=Decimal("0.0125"), ttft_ms=120
    )
    conversation = Conversation.objects.create(
        workspace=workspace, flow=flow, end_user="visitor-42", source="widget"
    )
    Message.objects.create(conversation=conversation, role="assistant", run=run, feedback=-1)
    for _ in range(60):
        _run(flow, created_by=owner)

    client.force_login(owner)
    with django_assert_max_num_queries(25) as one_run:
        page = client.get(reverse("observe:run-list"), {"source": "widget"})
    html = page.content.decode()
    assert "0.012500" in html and "120 ms" in html and "visitor-42" in html
    assert "Thumbs down" in html and reverse("flows:run-detail", args=[run.id]) in html
    assert '<td class="num">7</td>' in html and "2.0 s" in html
    # The number of queries does not grow with the page's size.
    with django_assert_max_num_queries(len(one_run)) as full_page:
        page = client.get(reverse("observe:run-list"))
    assert len(page.context["page"].rows) == 50 and len(full_page) <= len(one_run)


def test_a_runs_cost_counts_every_call_recorded_for_it_whenever_it_was_recorded(
    client, owner, flow, workspace
):
    """By run id (the ``usage_run`` index), not by the run's time window: a call recorded late
    (a worker's clock, a retried write) still counts."""
    now = timezone.now()
    run = _run(flow, started_at=now - timedelta(seconds=2), finished_at=now)
    for cost in ("0.01", "0.02"):
        Usage.objects.create(workspace=workspace, model_slug="echo", run_id=run.id, cost=cost)
    Usage.objects.filter(run_id=run.id, cost=Decimal("0.02")).update(
        created_at=now + timedelta(hours=3)
    )
    other = _run(flow)
    Usage.objects.create(workspace=workspace, model_slug="echo", run_id=other.id, cost="0.5")

    client.force_login(owner)
    rows = {row.run.id: row for row in client.get(reverse("observe:run-list")).context["page"].rows}

    assert rows[run.id].cost == Decimal("0.03")
    assert rows[other.id].cost == Decimal("0.5")


def test_filters_narrow_the_runs(client, owner, viewer, flow, make_flow, echo_model, workspace):
    other = make_flow(echo_model, slug="other")
    failed = _run(flow, status="failed", source="api")
    ok = _run(other, status="succeeded", source="chat", created_by=viewer)
    conversation = Conversation.objects.create(workspace=workspace, flow=other)
    Message.objects.create(conversation=conversation, role="assistant", run=ok, feedback=1)

    client.force_login(owner)
    url = reverse("observe:run-list")
    assert _ids(client.get(url, {"status": "failed"})) == [failed.id]
    assert _ids(client.get(url, {"flow": other.id})) == [ok.id]
    assert _ids(client.get(url, {"source": "api"})) == [failed.id]
    assert _ids(client.get(url, {"user": viewer.id})) == [ok.id]
    assert _ids(client.get(url, {"feedback": "up"})) == [ok.id]
    assert _ids(client.get(url, {"feedback": "down"})) == []
    assert _ids(client.get(url, {"version": 1, "status": "succeeded"})) == [ok.id]
    today = timezone.localdate()
    assert len(_ids(client.get(url, {"since": today, "until": today}))) == 2
    assert _ids(client.get(url, {"until": today - timedelta(days=1)})) == []


def test_search_finds_a_word_from_an_input_and_from_an_output(client, owner, flow):
    asked = _run(flow, text="Where is the lighthouse?", answer="On the cape.")
    answered = _run(flow, text="Tell me a story", answer="Once upon a time, a walrus sang.")
    _run(flow, text="nothing here", answer="nor here")

    client.force_login(owner)
    url = reverse("observe:run-list")
    assert _ids(client.get(url, {"q": "lighthouse"})) == [asked.id]
    assert _ids(client.get(url, {"q": "walrus"})) == [answered.id]
    assert _ids(client.get(url, {"q": "zebra"})) == []


def test_keyset_pages_have_no_duplicates_or_gaps_while_new_runs_arrive(owner, flow, workspace):
    made = [_run(flow) for _ in range(7)]
    runs = selectors.runs_filtered(owner, workspace.id, RunFilters())
    seen, after = [], None
    while True:
        page = selectors.runs_page(runs, after=after, size=3)
        seen += [row.run.id for row in page.rows]
        _run(flow)  # a new run arrives between pages: it sorts before every cursor
        if page.next_cursor is None:
            break
        after = selectors.Cursor.decode(page.next_cursor)
    assert seen == [run.id for run in reversed(made)]


def test_next_page_is_an_htmx_partial_of_rows(client, owner, flow):
    for _ in range(selectors.PAGE_SIZE + 2):
        _run(flow)
    client.force_login(owner)
    first = client.get(reverse("observe:run-list"))
    cursor = first.context["page"].next_cursor
    assert cursor and "Next page" in first.content.decode()
    more = client.get(reverse("observe:run-list"), {"after": cursor}, HTTP_HX_REQUEST="true")
    assert more.status_code == 200, more.content.decode()
    assert "<table" not in more.content.decode()
    assert more.content.decode().count("data-run=") == 2


@pytest.mark.parametrize(
    "query",
    [
        {"status": "exploded"},
        {"source": "fax"},
        {"version": "one"},
        {"version": "0"},
        {"flow": "999999"},
        {"flow": "abc"},
        {"since": "yesterday"},
        {"since": "2026-02-02", "until": "2026-01-01"},
        {"after": "not-a-cursor"},
        {"feedback": "meh"},
        {"user": "-1"},
        {"q": "x" * 201},
    ],
)
def test_bad_filter_values_get_a_clear_error_not_a_500(client, owner, flow, query):
    client.force_login(owner)
    page = client.get(reverse("observe:run-list"), query)
    assert page.status_code == 400
    assert "The filter could not be applied" in page.content.decode()


def test_a_flow_of_another_workspace_is_not_a_filter_choice(client, owner, outsider, flow):
    client.force_login(outsider)
    page = client.get(reverse("observe:run-list"), {"flow": flow.id})
    assert page.status_code == 400


def test_the_per_flow_list_shows_that_flows_runs(client, owner, flow, make_flow, echo_model):
    other = make_flow(echo_model, slug="other")
    mine = _run(flow)
    _run(other)
    client.force_login(owner)
    page = client.get(reverse("observe:flow-run-list", args=[flow.slug]))
    assert page.status_code == 200
    assert _ids(page) == [mine.id]
    detail = client.get(reverse("flows:flow-detail", args=[flow.slug]))
    assert reverse("observe:flow-run-list", args=[flow.slug]) in detail.content.decode()


def test_the_per_agent_list_shows_its_runs(client, owner, flow, agent):
    ran = _run(agent.flow)
    _run(flow)
    client.force_login(owner)
    page = client.get(reverse("observe:agent-run-list", args=[agent.slug]))
    assert page.status_code == 200
    assert _ids(page) == [ran.id]
    everything = client.get(reverse("observe:run-list")).content.decode()
    assert reverse("agents:agent-detail", args=[agent.slug]) in everything
    # The agent's backing flow is not a flow page.
    assert client.get(reverse("observe:flow-run-list", args=[agent.flow.slug])).status_code == 404


def test_a_limited_member_without_the_agent_gets_404(client, make_member, agent):
    limited = make_member("viewer", limited=True)
    client.force_login(limited)
    assert client.get(reverse("observe:agent-run-list", args=[agent.slug])).status_code == 404


def test_list_pages_answer_only_get(client, owner, flow, agent):
    client.force_login(owner)
    for url in (
        reverse("observe:run-list"),
        reverse("observe:flow-run-list", args=[flow.slug]),
        reverse("observe:agent-run-list", args=[agent.slug]),
    ):
        assert client.post(url).status_code == 405


def test_anonymous_is_sent_to_log_in(client):
    page = client.get(reverse("observe:run-list"))
    assert page.status_code == 302


def test_search_finds_a_rare_word_beyond_the_newest_runs(client, owner, flow, monkeypatch):
    monkeypatch.setattr(selectors, "SEARCH_WINDOW", 3)
    old = _run(flow, text="an albatross flew by")
    for _ in range(5):
        _run(flow, text="nothing to see")
    client.force_login(owner)
    assert _ids(client.get(reverse("observe:run-list"), {"q": "albatross"})) == [old.id]


@pytest.mark.parametrize("window", [1, 4, 1000])
def test_search_pages_find_every_match_the_member_may_see_and_no_other(
    owner, make_member, flow, make_flow, echo_model, workspace, monkeypatch, window
):
    """Whether the matches lie in the newest ``window`` runs or past them (the full-text
    index), every page holds only runs of flows the member may view that pass the filters."""
    from workspaces.sharing import object_grant

    monkeypatch.setattr(selectors, "SEARCH_WINDOW", window)
    hidden = make_flow(echo_model, slug="hidden")
    expected = []
    for n in range(9):
        if n % 3 == 0:
            expected.append(_run(flow, text=f"a heron, number {n}", status="failed"))
        _run(flow, text="a heron that succeeded", status="succeeded")
        _run(hidden, text="a heron nobody may see here", status="failed")
        _run(flow, text="a gull", status="failed")
    limited = make_member("viewer", limited=True)
    object_grant(obj=flow, subject=limited, level="view", actor=owner)

    runs = selectors.runs_filtered(limited, workspace.id, RunFilters(status="failed"))
    seen, after = [], None
    while True:
        page = selectors.runs_page(runs, after=after, search="heron", size=1)
        seen += [row.run.id for row in page.rows]
        if page.next_cursor is None:
            break
        after = selectors.Cursor.decode(page.next_cursor)
    assert seen == [run.id for run in reversed(expected)]


def test_a_searched_page_past_the_first_comes_by_its_cursor(client, owner, flow):
    old = [_run(flow, text=f"a pelican {n}") for n in range(selectors.PAGE_SIZE + 3)]
    for _ in range(10):
        _run(flow, text="no bird")
    client.force_login(owner)
    url = reverse("observe:run-list")
    first = client.get(url, {"q": "pelican"})
    assert _ids(first) == [run.id for run in reversed(old)][: selectors.PAGE_SIZE]
    more = client.get(url, {"q": "pelican", "after": first.context["page"].next_cursor})
    assert more.status_code == 200
    assert _ids(more) == [run.id for run in reversed(old[:3])]
    assert more.context["page"].next_cursor is None


def test_a_user_of_no_workspace_gets_403(client, db):
    from django.contrib.auth import get_user_model

    loner = get_user_model().objects.create_user("loner", "loner@example.com", "x")
    client.force_login(loner)
    assert client.get(reverse("observe:run-list")).status_code == 403
