"""The builder: an agent's settings (saved as its draft) and publishing the draft."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from agents import selectors
from agents.access import access_agent
from agents.forms import AgentSettingsForm, ToolFormSet, problems_place, tool_initial
from agents.models import Agent
from agents.services import SpecRefused, agent_draft_save, agent_publish
from conversations.limits import MAX_MESSAGE_CHARS
from studio import access
from workspaces.access import current_workspace


def _forms(request: HttpRequest, agent: Agent, data=None):
    initial = AgentSettingsForm.initial_for(agent)
    form = AgentSettingsForm(
        data,
        initial=initial,
        user=request.user,
        workspace_id=agent.workspace_id,
        current_target=initial["target"],
    )
    formset = ToolFormSet(
        data,
        initial=tool_initial(agent),
        prefix="tools",
        form_kwargs={"user": request.user, "workspace_id": agent.workspace_id},
    )
    return form, formset


def _render(request, agent: Agent, form, formset, status: int = 200) -> HttpResponse:
    """The builder page, or only its settings form for an htmx save."""
    actions = access.object_actions(request.user, agent)
    latest = selectors.agent_latest_version(agent)
    context = {
        "workspace": agent.workspace,
        "agent": agent,
        "form": form,
        "tools": formset,
        "latest": latest,
        "draft_changed": agent.draft is not None and (latest is None or latest.spec != agent.draft),
        "can_change": "change" in actions,
        "can_publish": "publish" in actions,
        "can_delete": "delete" in actions,
        "can_share": "share" in actions,
        # The published agent's chat: its backing flow's chat page (the preview makes that
        # flow before the first publish, so the flow alone does not mean it is published).
        "chat_slug": (
            agent.flow.slug if agent.flow and agent.published_version and "use" in actions else None
        ),
        "max_message_chars": MAX_MESSAGE_CHARS,
    }
    template = "agents/builder.html#settings" if request.htmx else "agents/builder.html"
    return render(request, template, context, status=status)


@login_required
@require_GET
def agent_detail(request: HttpRequest, agent_slug: str) -> HttpResponse:
    agent = access_agent(request.user, current_workspace(request), agent_slug, "view")
    form, formset = _forms(request, agent)
    return _render(request, agent, form, formset)


@login_required
@require_POST
def agent_save(request: HttpRequest, agent_slug: str) -> HttpResponse:
    """Save the settings as the draft; a refused save answers 400 with the typed values and
    each problem at its field."""
    agent = access_agent(request.user, current_workspace(request), agent_slug, "change")
    form, formset = _forms(request, agent, request.POST)
    if form.is_valid() and formset.is_valid():
        try:
            agent_draft_save(
                agent=agent,
                spec=form.spec(formset.uses()),
                actor=request.user,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
            )
        except SpecRefused as exc:
            problems_place(exc.problems, form, formset)
        else:
            messages.success(request, "Saved the draft.")
            url = reverse("agents:agent-detail", kwargs={"agent_slug": agent.slug})
            # The whole page changes (the publish button, the badges): htmx loads it anew.
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return _render(request, agent, form, formset, status=400)


@login_required
@require_POST
def agent_publish_view(request: HttpRequest, agent_slug: str) -> HttpResponse:
    agent = access_agent(request.user, current_workspace(request), agent_slug, "publish")
    try:
        version = agent_publish(agent=agent, actor=request.user, note=request.POST.get("note", ""))
    except ValidationError as exc:
        messages.error(request, "The draft was not published: " + "; ".join(exc.messages))
    else:
        messages.success(request, f"Published version {version.number}.")
    return redirect("agents:agent-detail", agent_slug=agent.slug)
