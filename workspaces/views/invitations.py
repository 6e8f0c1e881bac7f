"""Accepting an invitation: a signed-in user whose address it was sent to joins; a newcomer
creates an account, then logs in (there is no automatic login).

The link is ``/invitations/open/#<token>``: the token rides in the fragment, which browsers never
send, so no access log (daphne's, a proxy's) and no ``django.request`` line records it. The page's
script posts it; the session then remembers which invitation it proved, and the join page is
served at the same token-free path.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from workspaces import selectors, services
from workspaces.forms import SignupForm

OPEN = "open"  # the link's path segment where a token once stood
SESSION_KEY = "invitation_id"


def accept_url(request: HttpRequest, token: str) -> str:
    """The link to mail or show for ``token``."""
    return request.build_absolute_uri(reverse("workspaces:invitation", args=[OPEN])) + "#" + token


@never_cache
@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    if token != OPEN:
        # A link from before tokens moved to the fragment: prove it once, then leave its path.
        return _prove(request, token)
    if request.method == "POST" and "token" in request.POST:
        return _prove(request, request.POST["token"].strip())
    found = selectors.invitation_open(request.session.get(SESSION_KEY))
    if found is None:
        return render(request, "workspaces/invitation.html", {"opening": True})
    return _join(request, found)


def _prove(request: HttpRequest, token: str) -> HttpResponse:
    found = services.invitation_for_token(token)
    if found is None:
        raise Http404("This invitation does not exist, was used, or has expired.")
    request.session[SESSION_KEY] = found.id
    return redirect("workspaces:invitation", OPEN)


def _join(request: HttpRequest, found) -> HttpResponse:
    signed_in = request.user.is_authenticated
    form = SignupForm(request.POST if request.method == "POST" and not signed_in else None)
    if request.method == "POST":
        try:
            if signed_in:
                services.invitation_accept(invitation=found, user=request.user)
                request.session.pop(SESSION_KEY, None)
                request.session["workspace_id"] = found.workspace_id
                messages.success(request, f"You joined {found.workspace.name}.")
                return redirect("flows:home")
            if form.is_valid():
                services.invitation_signup(
                    invitation=found,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password1"],
                )
                request.session.pop(SESSION_KEY, None)
                messages.success(request, "Your account is ready. Log in to continue.")
                return redirect("login")
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
            return redirect("workspaces:invitation", OPEN)
    context = {
        "invitation": found,
        "form": form,
        "signed_in": signed_in,
        "addressed_to_user": signed_in and services.invitation_addressed_to(found, request.user),
    }
    return render(
        request, "workspaces/invitation.html", context, status=400 if form.errors else 200
    )
