"""Web origins (``scheme://host[:port]``) as the embed widget's settings and checks compare them:
one spelling for each, so that a listed origin cannot be matched, or dodged, by writing it
another way (upper case, a default port, a trailing slash, Unicode host names)."""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_ORIGINS = 20
DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginError(ValueError):
    """A text that is not one web origin."""


def origin_normalise(text: str) -> str:
    """``text`` as an origin in its one spelling: lower-case scheme and host, the host in
    IDNA (punycode), no default port. OriginError for anything else: a path, a query, user
    info, a wildcard, another scheme, an empty or malformed host."""
    text = text.strip()
    if not text or len(text) > 300:
        raise OriginError("An origin is like https://example.com (at most 300 characters).")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise OriginError(f"{text!r} is not an origin ({exc}).") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise OriginError(f"{text!r}: an origin starts with https:// or http://.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise OriginError(f"{text!r}: an origin has no path, query or user name.")
    host = parts.hostname or ""
    if not host or "*" in host or any(c.isspace() for c in host):
        raise OriginError(f"{text!r}: name one host (no wildcards).")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise OriginError(f"{text!r}: the host name is not valid.") from None
    if ":" in host:  # an IPv6 address, written as browsers write it
        host = f"[{host}]"
    suffix = "" if port in (None, DEFAULT_PORTS[scheme]) else f":{port}"
    return f"{scheme}://{host}{suffix}"


def origins_parse(text: str) -> list[str]:
    """The origins of ``text`` (one a line or separated by spaces or commas), normalised and
    without repeats; OriginError naming the first bad one, or for more than MAX_ORIGINS."""
    found: list[str] = []
    for word in text.replace(",", " ").split():
        origin = origin_normalise(word)
        if origin not in found:
            found.append(origin)
    if len(found) > MAX_ORIGINS:
        raise OriginError(f"At most {MAX_ORIGINS} origins.")
    return found


def origin_of(text: str) -> str | None:
    """The normalised origin of a header's value (``Origin``, a URL), or None when it has none
    (``null``, empty, malformed)."""
    if not text or text == "null":
        return None
    parts = urlsplit(text.strip())
    try:
        return origin_normalise(f"{parts.scheme}://{parts.netloc}")
    except (OriginError, ValueError):
        return None
