"""The embed widget's writes and checks: its settings (audited), opening a widget session (a
short-lived token for one end user on one web site), and each end user's request and token
quotas."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Sum

from catalog.models import Usage
from conversations.models import ChatSettings, Conversation, Message
from conversations.widget_tokens import (
    TokenRefused,
    WidgetSession,
    member_end_user,
    token_mint,
    token_ttl,
    visitor_end_user,
    visitor_new,
)
from flows.models import Flow
from studio.quotas import Limit, Refusal, quota_admit, quota_spend
from workspaces.audit import audit_record
from workspaces.quotas import workspace_limit

MAX_REQUESTS_PER_MINUTE = 100_000
MAX_TOKENS_PER_DAY = 10**12


@dataclass(frozen=True)
class EmbedSettings:
    """What an editor sets of a flow's widget (validated by ``EmbedSettingsForm``)."""

    enabled: bool
    allowed_origins: list[str]
    title: str
    colour: str
    sign_in_required: bool
    remote_images: bool
    requests_per_minute: int | None
    tokens_per_day: int | None


def embed_settings_change(*, flow: Flow, user, embed: EmbedSettings) -> ChatSettings:
    """Store the flow's widget settings, in one transaction with their audit entry; the widget
    gets its public address the first time it is turned on."""
    with transaction.atomic():
        settings, _ = ChatSettings.objects.select_for_update().get_or_create(flow=flow)
        before = _embed_state(settings)
        settings.embed_enabled = embed.enabled
        settings.allowed_origins = embed.allowed_origins
        settings.widget_title = embed.title
        settings.widget_colour = embed.colour
        settings.sign_in_required = embed.sign_in_required
        settings.remote_images = embed.remote_images
        settings.end_user_requests_per_minute = embed.requests_per_minute
        settings.end_user_tokens_per_day = embed.tokens_per_day
        if embed.enabled and not settings.embed_id:
            settings.embed_id = secrets.token_urlsafe(12)
        settings.save()
        audit_record(
            workspace=flow.workspace_id,
            actor=user,
            action="flow.embed_settings",
            target=flow,
            before=before,
            after=_embed_state(settings),
        )
    return settings


def _embed_state(settings: ChatSettings) -> dict:
    return {
        "enabled": settings.embed_enabled,
        "allowed_origins": list(settings.allowed_origins),
        "title": settings.widget_title,
        "colour": settings.widget_colour,
        "sign_in_required": settings.sign_in_required,
        "remote_images": settings.remote_images,
        "requests_per_minute": settings.end_user_requests_per_minute,
        "tokens_per_day": settings.end_user_tokens_per_day,
    }


@dataclass(frozen=True)
class OpenedSession:
    token: str
    expires_in: int
    # The anonymous visitor's secret, for their browser to keep (None for a member).
    visitor: str | None


def widget_session_open(
    *, flow: Flow, origin: str, visitor: str | None = None, member_id: int | None = None
) -> OpenedSession:
    """A token for an end user of ``flow``'s widget on ``origin`` (checked by the caller): the
    member ``member_id``, or the anonymous visitor whose secret is ``visitor`` (a new visitor
    when none, or a malformed one, is given)."""
    if member_id is not None:
        session = WidgetSession(flow.id, origin, member_end_user(member_id), member_id)
        return OpenedSession(token_mint(session), token_ttl(), None)
    try:
        end_user = visitor_end_user(visitor or "")
    except TokenRefused:
        visitor = visitor_new()
        end_user = visitor_end_user(visitor)
    session = WidgetSession(flow.id, origin, end_user)
    return OpenedSession(token_mint(session), token_ttl(), visitor)


def end_user_subject(flow_id: int, end_user: str) -> str:
    return f"widget:{flow_id}:{end_user}"


def widget_admit(*, session: WidgetSession, flow: Flow, settings: ChatSettings) -> Refusal | None:
    """Count one message of the widget's end user against their limits and the workspace's
    (atomically, in one Redis round trip), or the refusal, which counts against neither."""
    own = Limit(
        end_user_subject(session.flow_id, session.end_user),
        settings.end_user_requests_per_minute,
        settings.end_user_tokens_per_day,
        label="This chat",
    )
    return quota_admit([own, workspace_limit(flow.workspace)])


def widget_tokens_spend(*, conversation: Conversation, answers: list[Message]) -> None:
    """Add the tokens of a widget conversation's newly settled answers to its end user's count
    of today (the workspace's count is kept where each model call is recorded)."""
    run_ids = [m.run_id for m in answers if m.run_id]
    if not run_ids:
        return
    totals = Usage.objects.filter(run_id__in=run_ids, ok=True, cache_hit=False).aggregate(
        i=Sum("input_tokens"), o=Sum("output_tokens")
    )
    subject = end_user_subject(conversation.flow_id, conversation.end_user)
    quota_spend([subject], (totals["i"] or 0) + (totals["o"] or 0))
