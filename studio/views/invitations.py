"""Accepting an invitation: a signed-in user joins; a newcomer creates an account, then logs in
(there is no automatic login)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from studio import services
from studio.forms import SignupForm


@never_cache
@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    found = services.invitation_for_token(token)
    if found is None:
        raise Http404("This invitation does not exist, was used, or has expired.")
    signed_in = request.user.is_authenticated
    form = SignupForm(request.POST if request.method == "POST" and not signed_in else None)
    if request.method == "POST":
        try:
            if signed_in:
                services.invitation_accept(invitation=found, user=request.user)
                request.session["workspace_id"] = found.workspace_id
                messages.success(request, f"You joined {found.workspace.name}.")
                return redirect("home")
            if form.is_valid():
                services.invitation_signup(
                    invitation=found,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password1"],
                )
                messages.success(request, "Your account is ready. Log in to continue.")
                return redirect("login")
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
            return redirect("login")
    context = {"invitation": found, "form": form, "signed_in": signed_in}
    return render(request, "studio/invitation.html", context, status=400 if form.errors else 200)
