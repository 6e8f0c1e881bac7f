"""A flow's conversations, for those who may change the flow: who talked with it, and what they
thought of its answers. Read only.

An agent's editors review its conversations the same way (``agents.views.conversations``): the
pages below are rendered for the flow that serves the agent once the agent's access is checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from conversations.access import conversation_of_flow
from conversations.selectors import conversation_messages, conversations_of_flow
from conversations.services import messages_settle
from flows.access import access_flow
from flows.models import Flow
from workspaces.access import current_workspace

PAGE_SIZE = 50


@dataclass(frozen=True)
class Reviewed:
    """What the review pages are about: its name, its page, and the route of a conversation
    (taking ``slug`` and the conversation's id)."""

    name: str
    slug: str
    back_url: str
    back_label: str
    list_route: str
    detail_route: str


def _reviewed(flow: Flow) -> Reviewed:
    return Reviewed(
        name=flow.name,
        slug=flow.slug,
        back_url=reverse("flows:flow-detail", args=[flow.slug]),
        back_label="Flow details",
        list_route="conversations:review-list",
        detail_route="conversations:review-detail",
    )


def review_list_page(request: HttpRequest, flow: Flow, reviewed: Reviewed) -> HttpResponse:
    """The page of ``flow``'s conversations; the caller checked that the member may review."""
    page = Paginator(conversations_of_flow(flow), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"workspace": flow.workspace, "reviewed": reviewed, "page": page}
    return render(request, "conversations/review_list.html", context)


def review_detail_page(
    request: HttpRequest, flow: Flow, conversation_id, reviewed: Reviewed
) -> HttpResponse:
    """One conversation of ``flow`` (Http404 for any other); the caller checked the member."""
    conversation = conversation_of_flow(flow, conversation_id)
    messages_settle(conversation)
    context = {
        "workspace": flow.workspace,
        "reviewed": reviewed,
        "conversation": conversation,
        "messages": conversation_messages(conversation),
    }
    return render(request, "conversations/review_detail.html", context)


@login_required
@require_GET
def conversation_list(request: HttpRequest, slug: str) -> HttpResponse:
    flow = access_flow(request.user, current_workspace(request), slug, "change")
    return review_list_page(request, flow, _reviewed(flow))


@login_required
@require_GET
def conversation_detail(request: HttpRequest, slug: str, conversation_id) -> HttpResponse:
    flow = access_flow(request.user, current_workspace(request), slug, "change")
    return review_detail_page(request, flow, conversation_id, _reviewed(flow))
