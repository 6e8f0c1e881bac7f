"""A run's page shows the conversation the run answered in and the feedback on its answer, to
those who may read that conversation only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conversations.models import Conversation, Message, Role, Source
from flows.models import Flow, Run, RunSource, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(make_flow, echo_model) -> Flow:
    return make_flow(echo_model, slug="assistant")


def _run(flow: Flow, *, source: str = RunSource.CHAT, status: str = RunStatus.SUCCEEDED) -> Run:
    return Run.objects.create(
        workspace=flow.workspace,
        flow=flow,
        flow_version=flow.published_version,
        source=source,
        status=status,
        inputs={"message": "hello"},
        outputs={"text": "hi"},
        deadline_at=timezone.now() + timedelta(hours=1),
    )


def _conversation(flow: Flow, user=None, *, turns: int, **fields) -> tuple[Conversation, Run]:
    """A conversation of ``turns`` exchanges; the last answer's run is returned."""
    conversation = Conversation.objects.create(
        workspace=flow.workspace, flow=flow, user=user, title="Capitals", **fields
    )
    for n in range(1, turns + 1):
        run = _run(flow, source=fields.get("source", RunSource.CHAT))
        Message.objects.create(conversation=conversation, role=Role.USER, text=f"question {n}")
        Message.objects.create(
            conversation=conversation,
            role=Role.ASSISTANT,
            text=f"answer {n}",
            run=run,
            settled=True,
        )
    return conversation, run


def _page(client, user, run: Run):
    client.force_login(user)
    return client.get(reverse("flows:run-detail", args=[run.id]))


def test_a_members_own_chat_run_shows_its_turns_and_the_feedback_on_its_answer(
    client, make_member, flow
):
    operator = make_member("operator")
    conversation, run = _conversation(flow, operator, turns=2)
    Message.objects.filter(run=run).update(feedback=-1, feedback_comment="Wrong city <b>x</b>")

    page = _page(client, operator, run)

    assert page.status_code == 200
    html = page.content.decode()
    assert 'aria-label="Conversation"' in html
    for text in ("question 1", "answer 1", "question 2", "answer 2"):
        assert text in html
    assert "This run's answer" in html
    assert "👎 rated bad" in html
    assert "Wrong city &lt;b&gt;x&lt;/b&gt;" in html  # escaped: an end user wrote it
    assert f"by {operator.get_username()}" in html
    chat = reverse("conversations:conversation", args=[flow.slug, conversation.id])
    assert f'href="{chat}"' in html


def test_a_long_conversation_shows_the_last_turns_up_to_this_run_only(client, owner, flow):
    conversation, _last = _conversation(flow, owner, turns=15)
    middle = Message.objects.get(conversation=conversation, text="answer 12").run

    html = _page(client, owner, middle).content.decode()

    # 20 messages up to answer 12: questions and answers 3 to 12, nothing after.
    assert "question 3<" in html and "answer 12" in html
    assert "answer 2<" not in html and "question 13" not in html
    assert "the last 20 turns up to this run" in html
    assert "No feedback yet." in html


def test_another_members_private_chat_is_not_shown_to_whoever_may_only_view_or_run(
    client, make_member, viewer, flow
):
    author = make_member("operator", "author")
    other = make_member("operator", "other")
    _conversation_, run = _conversation(flow, author, turns=1)
    Message.objects.filter(run=run).update(feedback=1, feedback_comment="private remark")

    for member in (viewer, other):
        page = _page(client, member, run)
        assert page.status_code == 200  # the run itself they may read
        html = page.content.decode()
        assert 'aria-label="Conversation"' not in html
        assert "private remark" not in html and "question 1" not in html


def test_an_editor_reviews_any_conversation_of_the_flow_with_a_link_to_its_review(
    client, make_member, flow
):
    author = make_member("operator", "author")
    editor = make_member("editor")
    conversation, run = _conversation(flow, author, turns=1)
    Message.objects.filter(run=run).update(feedback=1)

    html = _page(client, editor, run).content.decode()

    assert "question 1" in html and "👍 rated good" in html
    review = reverse("conversations:review-detail", args=[flow.slug, conversation.id])
    assert f'href="{review}"' in html
    chat = reverse("conversations:conversation", args=[flow.slug, conversation.id])
    assert chat not in html  # not theirs to continue


def test_a_widget_visitors_conversation_is_shown_to_reviewers_only(
    client, make_member, viewer, flow
):
    editor = make_member("editor")
    _conversation_, run = _conversation(
        flow, None, turns=1, source=Source.WIDGET, end_user="visitor-42"
    )

    editor_html = _page(client, editor, run).content.decode()
    assert "question 1" in editor_html and "visitor-42" in editor_html
    viewer_html = _page(client, viewer, run).content.decode()
    assert 'aria-label="Conversation"' not in viewer_html


def test_an_outsider_gets_404_and_sees_nothing(client, outsider, owner, flow):
    _conversation_, run = _conversation(flow, owner, turns=1)

    page = _page(client, outsider, run)

    assert page.status_code == 404
    assert "question 1" not in page.content.decode()


def test_a_run_outside_any_conversation_shows_no_panel(client, owner, flow):
    run = _run(flow, source=RunSource.STUDIO)

    page = _page(client, owner, run)

    assert page.status_code == 200
    assert 'aria-label="Conversation"' not in page.content.decode()


def test_the_live_refresh_of_the_trace_carries_the_panel(client, owner, flow):
    """The trace partial (htmx refresh while the run goes on) renders the panel too: when the
    run ends its answer shows settled."""
    _conversation_, run = _conversation(flow, owner, turns=1)
    client.force_login(owner)

    page = client.get(
        reverse("flows:run-detail", args=[run.id]), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="trace"
    )

    html = page.content.decode()
    assert page.status_code == 200 and "<html" not in html
    assert 'aria-label="Conversation"' in html and "answer 1" in html


def test_the_run_page_refuses_other_methods(client, owner, flow):
    _conversation_, run = _conversation(flow, owner, turns=1)
    client.force_login(owner)

    assert client.post(reverse("flows:run-detail", args=[run.id])).status_code == 405


def test_an_answer_whose_run_just_ended_shows_its_text(client, owner, flow):
    conversation, run = _conversation(flow, owner, turns=1)
    Message.objects.filter(run=run).update(text="", settled=False)

    html = _page(client, owner, run).content.decode()

    assert "Still answering" not in html and ">hi<" in html  # the run's answer, settled
    assert Message.objects.get(run=run).settled
