"""A published agent's embed widget settings: the widget of its backing flow, set by those who
may change the agent (the flow pages never show that flow)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from agents.access import access_agent
from conversations.forms import EmbedSettingsForm
from conversations.selectors import chat_settings_of
from conversations.views.settings import embed_snippet
from conversations.widget import embed_settings_change
from workspaces.access import current_workspace


@login_required
@require_http_methods(["GET", "POST"])
def agent_widget(request: HttpRequest, agent_slug: str) -> HttpResponse:
    agent = access_agent(request.user, current_workspace(request), agent_slug, "change")
    context: dict = {"workspace": agent.workspace, "agent": agent}
    if agent.flow is None or agent.published_version is None:  # the preview makes the flow
        return render(request, "agents/widget.html", context)  # "publish it first"
    current = chat_settings_of(agent.flow)
    form, status = EmbedSettingsForm.of(current), 200
    if request.method == "POST":
        form = EmbedSettingsForm(request.POST)
        if form.is_valid():
            embed_settings_change(flow=agent.flow, user=request.user, embed=form.embed_settings())
            messages.success(request, "Saved the widget's settings.")
            return redirect(reverse("agents:agent-widget", args=[agent.slug]) + "#embed")
        status = 400
    context |= {
        "flow": agent.flow,
        "embed_form": form,
        "embed_settings": current,
        "snippet": embed_snippet(request, current),
    }
    return render(request, "agents/widget.html", context, status=status)
