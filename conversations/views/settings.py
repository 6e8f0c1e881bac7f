"""A flow's chat settings page: the opening message and suggested questions of its chat."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from conversations.forms import ChatSettingsForm
from conversations.selectors import chat_settings_of
from conversations.services import chat_settings_change
from flows.access import access_flow
from workspaces.access import current_workspace


@login_required
@require_http_methods(["GET", "POST"])
def chat_settings(request: HttpRequest, slug: str) -> HttpResponse:
    flow = access_flow(request.user, current_workspace(request), slug, "change")
    current = chat_settings_of(flow)
    if request.method == "POST":
        form = ChatSettingsForm(request.POST)
        if form.is_valid():
            chat_settings_change(
                flow=flow,
                opening=form.cleaned_data["opening"],
                suggestions=form.cleaned_data["suggestions"],
                user=request.user,
            )
            messages.success(request, "Saved the chat's settings.")
            return redirect("conversations:chat-settings", slug=flow.slug)
        status = 400
    else:
        initial = {"opening": current.opening, "suggestions": "\n".join(current.suggestions)}
        form, status = ChatSettingsForm(initial=initial), 200
    context = {"workspace": flow.workspace, "flow": flow, "form": form}
    return render(request, "conversations/chat_settings.html", context, status=status)
