"""A flow's conversations, for those who may change the flow: who talked with it, and what they
thought of its answers. Read only."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from conversations.access import access_conversation
from conversations.selectors import conversation_messages, conversations_of_flow
from conversations.services import messages_settle
from flows.access import access_flow
from workspaces.access import current_workspace

PAGE_SIZE = 50


@login_required
@require_GET
def conversation_list(request: HttpRequest, slug: str) -> HttpResponse:
    flow = access_flow(request.user, current_workspace(request), slug, "change")
    page = Paginator(conversations_of_flow(flow), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"workspace": flow.workspace, "flow": flow, "page": page}
    return render(request, "conversations/review_list.html", context)


@login_required
@require_GET
def conversation_detail(request: HttpRequest, slug: str, conversation_id) -> HttpResponse:
    flow = access_flow(request.user, current_workspace(request), slug, "change")
    conversation = access_conversation(request.user, conversation_id, "view")
    if conversation.flow_id != flow.id:
        raise Http404
    messages_settle(conversation)
    context = {
        "workspace": flow.workspace,
        "flow": flow,
        "conversation": conversation,
        "messages": conversation_messages(conversation),
    }
    return render(request, "conversations/review_detail.html", context)
