"""The embed widget's credentials: a short-lived signed token bound to a flow, the web site
(origin) that embeds it and one end user, and the visitor secret that keeps an anonymous end
user's identity (and so their conversations) between tokens.

A token is signed with the studio's SECRET_KEY (``django.core.signing``), never stored, and
carried in an ``Authorization: Bearer`` header or, for the WebSocket, its query string: never a
cookie, so the host page cannot ride a member's studio session."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

SALT = "studio.widget"
PREFIX = "wt_"
VISITOR = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32)


class TokenRefused(Exception):
    """A widget token that is missing, forged, expired or for another flow."""


@dataclass(frozen=True)
class WidgetSession:
    """Who a widget token speaks for: an end user of one flow, embedded on one origin."""

    flow_id: int
    origin: str
    end_user: str
    # The member a signed-in widget speaks for (None: an anonymous visitor).
    user_id: int | None = None


def token_ttl() -> int:
    return int(getattr(settings, "STUDIO_WIDGET_TOKEN_TTL", 900))


def token_mint(session: WidgetSession) -> str:
    payload = {"f": session.flow_id, "o": session.origin, "e": session.end_user}
    if session.user_id is not None:
        payload["u"] = session.user_id
    return PREFIX + signing.dumps(payload, salt=SALT, compress=True)


def token_read(token: str | None) -> WidgetSession:
    """The session a token names; TokenRefused when it is missing, forged or older than the
    token lifetime."""
    if not token or not token.startswith(PREFIX) or len(token) > 2000:
        raise TokenRefused("A widget token is needed.")
    try:
        payload = signing.loads(token[len(PREFIX) :], salt=SALT, max_age=token_ttl())
    except signing.SignatureExpired:
        raise TokenRefused("The widget's token has expired: ask for a new one.") from None
    except signing.BadSignature:
        raise TokenRefused("The widget's token is not valid.") from None
    try:
        return WidgetSession(
            flow_id=int(payload["f"]),
            origin=str(payload["o"]),
            end_user=str(payload["e"]),
            user_id=int(payload["u"]) if payload.get("u") is not None else None,
        )
    except (KeyError, TypeError, ValueError):
        raise TokenRefused("The widget's token is not valid.") from None


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header."""
    scheme, _, value = (header or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def visitor_new() -> str:
    """A new anonymous visitor's secret: kept by their browser, shown to nobody else."""
    return secrets.token_urlsafe(32)


def visitor_end_user(secret: str) -> str:
    """The end user a visitor secret names (a hash: the secret itself is never stored)."""
    if not VISITOR.match(secret):
        raise TokenRefused("The visitor id is not valid.")
    return "visitor:" + hashlib.sha256(secret.encode()).hexdigest()[:40]


def member_end_user(user_id: int) -> str:
    return f"member:{user_id}"
