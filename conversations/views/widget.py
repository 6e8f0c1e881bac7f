"""The embed widget's own pages: the chat a web site frames (``/embed/<id>/``), the session
that gives its end user a short-lived token, and the sign-in window of a widget whose end
users must be members. None of them takes the studio's cookies as the end user's identity,
except the sign-in window, which is a page of the studio's own (never framed)."""

from __future__ import annotations

from django.contrib.auth.views import LoginView
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from pydantic import BaseModel, ConfigDict, Field

from conversations.access import access_widget_flow, widget_settings
from conversations.limits import MAX_MESSAGE_CHARS
from conversations.models import ChatSettings
from conversations.origins import origin_of
from conversations.widget import widget_session_open
from conversations.widget_tokens import TokenRefused, bearer, token_read
from studio.access import check
from studio.headers import content_security_policy
from studio.json_api import BodyRefused, error, read_body
from studio.throttle import throttle_hit

# New sessions one address may open a minute: each anonymous session may be a new visitor,
# with fresh per-end-user quotas.
SESSIONS_PER_MINUTE = 30


def own_origin(request: HttpRequest) -> str:
    """The studio's own origin, as the browser reached it."""
    return f"{request.scheme}://{request.get_host()}".lower()


def request_origin(request: HttpRequest) -> str | None:
    """The request's ``Origin`` header, normalised; None when it sent none, and ``"null"`` (which
    matches no allowed origin) for an opaque or malformed one."""
    header = request.headers.get("Origin")
    if header is None:
        return None
    return origin_of(header) or "null"


def _policy(request: HttpRequest, settings: ChatSettings) -> str:
    """The widget page's CSP: framed only by the allowed web sites (and the studio itself);
    remote images only where the flow allows them."""
    ancestors = " ".join(["'self'", *settings.allowed_origins])
    images = "'self' data: https:" if settings.remote_images else "'self' data:"
    return content_security_policy(request, frame_ancestors=ancestors, img_src=images)


@xframe_options_exempt  # framing is bounded by the page's CSP frame-ancestors instead
@require_GET
def widget(request: HttpRequest, embed_id: str) -> HttpResponse:
    settings = widget_settings(embed_id)
    context = {
        "flow": settings.flow,
        "settings": settings,
        "embed_id": embed_id,
        "title": settings.widget_title or settings.flow.name,
        "max_message_chars": MAX_MESSAGE_CHARS,
    }
    response = render(request, "conversations/widget.html", context)
    response["Content-Security-Policy"] = _policy(request, settings)
    response["Referrer-Policy"] = "no-referrer"
    return response


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    origin: str = Field(max_length=300, description="The origin of the page showing the widget.")
    visitor: str = Field(default="", max_length=100)


def _session_origin(request: HttpRequest, claimed: str) -> str:
    """The origin a session is for: the page that frames the widget (its claim), which must be
    the studio's own or the one the request comes from when it says (a web page cannot claim
    another site's origin)."""
    origin = origin_of(claimed)
    sent = request_origin(request)
    own = own_origin(request)
    if origin is None or (sent is not None and sent not in (own, origin)):
        raise PermissionDenied("The widget's origin does not match the request.")
    return origin


@csrf_exempt  # no cookie is read: nothing a forged request could ride
@require_POST
def widget_session(request: HttpRequest, embed_id: str) -> JsonResponse:
    """A token for the widget's end user: ``{"origin", "visitor"}`` in, ``{"token",
    "expires_in", "visitor"}`` out. A member's widget sends its current token to renew it; an
    anonymous visitor sends the secret the last answer gave, keeping their conversations."""
    address = request.META.get("REMOTE_ADDR", "")
    if not throttle_hit(key=f"widget-session:{address}", limit=SESSIONS_PER_MINUTE, window_s=60):
        response = error(429, "Too many new chat sessions: wait a minute.", "rate_limit_error")
        response["Retry-After"] = "60"
        return response
    settings = widget_settings(embed_id)  # Http404 first: a widget that is off says nothing
    flow = settings.flow
    try:
        body = read_body(request, SessionRequest, limit=10_000)
        origin = _session_origin(request, body.origin)
        renewed = bearer(request.headers.get("Authorization"))
        member_id = None
        if renewed:
            session = token_read(renewed)
            access_widget_flow(session, embed_id, own_origin=own_origin(request), origin=origin)
            if session.origin != origin:
                raise PermissionDenied("The widget's origin does not match its token.")
            member_id = session.user_id
        elif settings.sign_in_required:
            sign_in = reverse("conversations:widget-sign-in", args=[embed_id])
            response = error(401, "Sign in to use this chat.", "authentication_error", "sign_in")
            response["X-Sign-In"] = f"{sign_in}?{urlencode({'origin': origin})}"
            return response
        if origin != own_origin(request) and origin not in settings.allowed_origins:
            raise PermissionDenied(f"This chat may not be embedded on {origin}.")
        opened = widget_session_open(
            flow=flow, origin=origin, visitor=body.visitor, member_id=member_id
        )
    except BodyRefused as exc:
        return error(exc.status, exc.message)
    except TokenRefused as exc:
        return error(401, str(exc), "authentication_error", "invalid_token")
    except PermissionDenied as exc:
        return error(403, str(exc), "permission_error", "origin_not_allowed")
    return JsonResponse(
        {"token": opened.token, "expires_in": opened.expires_in, "visitor": opened.visitor}
    )


class _SignInForm(LoginView):
    """The studio's login (its form, checks and throttling) at the widget's sign-in address,
    which it comes back to once signed in: the window never leaves that address, whose pages
    keep their opener (``widget_sign_in``)."""

    template_name = "conversations/widget_sign_in.html"

    def get_success_url(self) -> str:
        return self.request.get_full_path()  # never a ``next`` of the request's choosing


@require_http_methods(["GET", "POST"])
def widget_sign_in(request: HttpRequest, embed_id: str) -> HttpResponse:
    """The window a signed-in widget opens on the studio: the studio's login form, then, for a
    member who may run the flow, a token for it, handed to the widget that opened the window
    (same origin only)."""
    settings = widget_settings(embed_id)
    origin = origin_of(request.GET.get("origin", ""))
    if origin is None or (origin != own_origin(request) and origin not in settings.allowed_origins):
        raise PermissionDenied("This chat may not be embedded on that web site.")
    if not request.user.is_authenticated:
        response = _SignInForm.as_view(extra_context={"flow": settings.flow})(request)
    else:
        check(request.user, settings.flow, "run")
        opened = widget_session_open(flow=settings.flow, origin=origin, member_id=request.user.pk)
        context = {"flow": settings.flow, "token": opened.token, "expires_in": opened.expires_in}
        response = render(request, "conversations/widget_sign_in.html", context)
    # The token reaches the widget through ``window.opener``: the widget's frame, in a page of
    # another site. The studio's default opener policy (same-origin) would cut the window off
    # from it at the first page (the login's included), so these pages, and only these, keep it.
    response["Cross-Origin-Opener-Policy"] = "unsafe-none"
    return response
