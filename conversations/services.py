"""Writes of conversations: start one, send a message (which starts a run with the history),
take the answers of ended runs, rename, delete, and feedback."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from conversations.limits import message_text_check
from conversations.models import ChatSettings, Conversation, Message, Role, Source
from conversations.selectors import conversation_history
from conversations.widget import widget_tokens_spend
from flows import selectors as flow_selectors
from flows.experiments import serving_version
from flows.models import TERMINAL, Flow, NodeStatus, Run, RunStatus
from flows.services import run_create, run_fail
from flows.variables import variables_problem, variables_written
from workspaces.audit import audit_record

TITLE_LENGTH = 60
# The reason a run stopped by its end user fails with (the chat shows "Stopped").
STOPPED = "stopped by the user"


@dataclass(frozen=True)
class Exchange:
    """What sending a message made: the user's turn, the answer to come, and its run."""

    question: Message
    answer: Message
    run: Run
    answer_nodes: frozenset[str]
    # The messages this exchange replaced (a regenerated question and answer).
    replaced: tuple[int, ...] = ()


def conversation_start(
    *, flow: Flow, user=None, api_key=None, end_user: str = "", source: str = ""
) -> Conversation:
    """A new, empty conversation; ``source`` defaults to the API for a key, else the chat."""
    return Conversation.objects.create(
        workspace_id=flow.workspace_id,
        flow=flow,
        user=user if user is not None and user.is_authenticated else None,
        api_key=api_key,
        end_user=end_user[:200],
        source=source or (Source.API if api_key is not None else Source.CHAT),
    )


def message_send(
    *, conversation: Conversation, text: str, source: str, user=None, api_key=None
) -> Exchange:
    """Start a run of the flow's published version with ``text`` and the conversation's history,
    and store both turns (the answer's text arrives with the run's end: ``messages_settle``).
    During an A/B experiment the version is the conversation's arm's (``flows.experiments``).
    ValidationError when the flow cannot chat or the text is empty."""
    flow = conversation.flow
    message_text_check(text)
    text = text.strip()
    if not text:
        raise ValidationError("Type a message first.")
    if flow.published_version is None:
        raise ValidationError("This flow has no published version yet.")
    # During an A/B experiment the conversation keeps one arm for all its turns.
    version, arm = serving_version(flow, str(conversation.id))
    binding = flow_selectors.chat_binding(version)
    messages_settle(conversation)
    history = conversation_history(conversation)
    with transaction.atomic():
        run = run_create(
            flow=flow,
            version=version,
            arm=arm,
            inputs={binding.input: text},
            source=source,
            user=user,
            api_key=api_key,
            history=history,
            variables=conversation.variables,
        )
        question = Message.objects.create(conversation=conversation, role=Role.USER, text=text)
        answer = Message.objects.create(conversation=conversation, role=Role.ASSISTANT, run=run)
        changed = {"updated_at": timezone.now()}
        if not conversation.title:
            changed["title"] = _title(text)
        Conversation.objects.filter(id=conversation.id).update(**changed)
        for name, value in changed.items():
            setattr(conversation, name, value)
    return Exchange(question, answer, run, binding.answer_nodes)


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def messages_settle(conversation: Conversation) -> None:
    """Give the answers whose runs have ended their text: the run's answer, or nothing for a
    failed run (the next run's history then skips it). The conversation variables a succeeded
    run wrote are merged into the conversation's (``_variables_merged``); a failed or stopped
    one changes none."""
    pending = conversation.messages.filter(
        role=Role.ASSISTANT, settled=False, run__status__in=TERMINAL
    ).select_related("run")
    settled = []
    for message in pending:
        run = message.run
        succeeded = run.status == RunStatus.SUCCEEDED
        message.text = run_answer(run) if succeeded else ""
        message.cut = run.node_results.filter(details__finish_reason="length").exists()
        message.citations = run_citations(run) if message.text else []
        message.settled = True
        written = variables_written(run) if succeeded else {}
        with transaction.atomic():
            merged, message.notice = _variables_merged(conversation, written)
            # Conditional: of two requests settling the same answer at once, one does (the
            # other waited on the conversation's lock, and now merges nothing).
            if not Message.objects.filter(id=message.id, settled=False).update(
                text=message.text,
                cut=message.cut,
                citations=message.citations,
                notice=message.notice,
                settled=True,
            ):
                continue
            if merged is not None:
                Conversation.objects.filter(id=conversation.id).update(variables=merged)
                conversation.variables = merged
        settled.append(message)
    if conversation.source == Source.WIDGET:
        widget_tokens_spend(conversation=conversation, answers=settled)


def _variables_merged(conversation: Conversation, written: dict) -> tuple[dict | None, str]:
    """The conversation's variables with a run's writes (its delta) merged over them as they are
    now, and what to tell the user. Locks the conversation's row until the caller's transaction
    ends, so that two turns settling at once keep each other's writes (of two writes to one
    name, the later settled wins). Past the limits: None (none of ``written`` is kept) and why."""
    if not written:
        return None, ""
    locked = Conversation.objects.select_for_update().filter(id=conversation.id)
    merged = {**(locked.values_list("variables", flat=True).first() or {}), **written}
    problem = variables_problem(merged)
    if problem:
        names = ", ".join(sorted(written))
        return None, f"The variables this answer set ({names}) were not kept: {problem}."[:500]
    return merged, ""


# What an answer keeps of its sources: the citations the chat showed, each passage shortened.
CITATIONS_KEPT = 20
CITATION_TEXT = 400


def run_citations(run: Run) -> list[dict]:
    """The sources of a run's answer: the citations of its knowledge retrieval nodes."""
    found: list[dict] = []
    retrievals = run.node_results.filter(
        node_type="knowledge_retrieval", status=NodeStatus.SUCCEEDED
    ).order_by("finished_at", "id")
    for outputs in retrievals.values_list("outputs", flat=True):
        citations = (outputs or {}).get("citations")
        if isinstance(citations, list):
            found += [c for c in citations if isinstance(c, dict)]
    return [
        {
            "index": c.get("index"),
            "document": str(c.get("document", "")),
            "page": c.get("page"),
            "section": str(c.get("section") or ""),
            "text": str(c.get("text", ""))[:CITATION_TEXT],
        }
        for c in found[:CITATIONS_KEPT]
    ]


def run_answer(run: Run) -> str:
    """The answer a run gave: its ``text`` output, else its text outputs joined."""
    outputs = run.outputs or {}
    if isinstance(outputs.get("text"), str):
        return outputs["text"]
    return "\n\n".join(v for v in outputs.values() if isinstance(v, str))


def message_stop(*, answer: Message) -> bool:
    """Stop the run writing ``answer``; False if it had already ended."""
    if answer.role != Role.ASSISTANT or answer.run_id is None:
        raise ValidationError("Only an answer being written can be stopped.")
    return run_fail(run_id=answer.run_id, reason=STOPPED)


def message_regenerate(*, answer: Message, source: str, user=None, api_key=None) -> Exchange:
    """Ask the conversation's last question again: its answer and the question are replaced by
    a new exchange (the old answer is not part of the new one's history). It starts from the
    conversation's variables as they are now, those the old answer wrote included."""
    conversation = answer.conversation
    last_two = list(conversation.messages.order_by("-created_at", "-id")[:2])
    if len(last_two) < 2 or last_two[0].id != answer.id or last_two[1].role != Role.USER:
        raise ValidationError("Only the conversation's last answer can be regenerated.")
    question = last_two[1]
    if answer.run_id is not None:
        run_fail(run_id=answer.run_id, reason=STOPPED)  # still writing: it stops
    replaced = (question.id, answer.id)
    with transaction.atomic():
        Message.objects.filter(id__in=replaced).delete()
    exchange = message_send(
        conversation=conversation, text=question.text, source=source, user=user, api_key=api_key
    )
    return dataclasses.replace(exchange, replaced=replaced)


def chat_settings_change(*, flow: Flow, opening: str, suggestions: list[str], user=None):
    """Set how the flow's chat greets its end users (audited)."""
    with transaction.atomic():
        settings_, _ = ChatSettings.objects.get_or_create(flow=flow)
        before = {"opening": settings_.opening, "suggestions": settings_.suggestions}
        settings_.opening, settings_.suggestions = opening, suggestions
        settings_.save()
        audit_record(
            workspace=flow.workspace_id,
            actor=user,
            action="flow.chat_settings",
            target=flow,
            before=before,
            after={"opening": opening, "suggestions": suggestions},
        )
    return settings_


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    title = " ".join(title.split())
    if not title:
        raise ValidationError("A conversation needs a title.")
    if len(title) > 200:
        raise ValidationError("A title has at most 200 characters.")
    conversation.title = title
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


def message_feedback(*, message: Message, rating: int, comment: str = "") -> Message:
    """An end user's thumbs up (+1) or down (-1) on an answer, with an optional comment."""
    if message.role != Role.ASSISTANT:
        raise ValidationError("Only answers take feedback.")
    if rating not in (1, -1):
        raise ValidationError("Feedback is +1 or -1.")
    if len(comment) > 2000:
        raise ValidationError("A comment has at most 2,000 characters.")
    message.feedback = rating
    message.feedback_comment = comment.strip()
    message.save(update_fields=["feedback", "feedback_comment"])
    return message
