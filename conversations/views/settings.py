"""A flow's chat settings page: the greeting of its chat (opening message, suggested questions)
and its embed widget (allowed web sites, looks, sign-in, limits per end user), with the code to
paste on a web site."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_http_methods

from conversations.forms import ChatSettingsForm, EmbedSettingsForm
from conversations.models import ChatSettings
from conversations.selectors import chat_settings_of
from conversations.services import chat_settings_change
from conversations.widget import embed_settings_change
from flows.access import access_flow
from workspaces.access import current_workspace


def _greeting_form(current: ChatSettings) -> ChatSettingsForm:
    initial = {"opening": current.opening, "suggestions": "\n".join(current.suggestions)}
    return ChatSettingsForm(initial=initial)


def embed_snippet(request: HttpRequest, current: ChatSettings) -> dict | None:
    """The code that embeds the widget: a script that opens a chat bubble, or an iframe."""
    if not (current.embed_enabled and current.embed_id):
        return None
    url = request.build_absolute_uri(reverse("conversations:widget", args=[current.embed_id]))
    script = request.build_absolute_uri(static("conversations/embed.js"))
    return {
        "url": url,
        "script": (
            f'<script src="{script}" data-studio-widget="{url}" '
            f'data-colour="{current.widget_colour}" defer></script>'
        ),
        "iframe": (
            f'<iframe src="{url}" title="{escape(current.widget_title or "Chat")}" '
            'style="width: 400px; height: 600px; border: 0" allow="clipboard-write"></iframe>'
        ),
    }


@login_required
@require_http_methods(["GET", "POST"])
def chat_settings(request: HttpRequest, slug: str) -> HttpResponse:
    flow = access_flow(request.user, current_workspace(request), slug, "change")
    current = chat_settings_of(flow)
    form, embed_form, status = _greeting_form(current), EmbedSettingsForm.of(current), 200
    if request.method == "POST" and request.POST.get("form") == "embed":
        embed_form = EmbedSettingsForm(request.POST)
        if embed_form.is_valid():
            embed_settings_change(flow=flow, user=request.user, embed=embed_form.embed_settings())
            messages.success(request, "Saved the widget's settings.")
            return redirect(reverse("conversations:chat-settings", args=[flow.slug]) + "#embed")
        status = 400
    elif request.method == "POST":
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
    context = {
        "workspace": flow.workspace,
        "flow": flow,
        "form": form,
        "embed_form": embed_form,
        "embed_settings": current,
        "snippet": embed_snippet(request, current),
    }
    return render(request, "conversations/chat_settings.html", context, status=status)
