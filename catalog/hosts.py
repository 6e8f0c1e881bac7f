"""The allowed hosts of a credential: how an admin writes them and how a URL's host is matched.

An entry is a host name (``api.github.com``), an IP address, or ``*.`` and a domain
(``*.example.com``: its subdomains, not the domain itself). Hosts are compared in their ASCII
(IDNA) form, lowercased and without a trailing dot; the port and the scheme are not part of it.
"""

from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import ValidationError

MAX_HOSTS = 20
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_NAME = re.compile(rf"^(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}$")


def _normal(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def _ascii(host: str) -> str:
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def hosts_clean(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """The entries of ``value`` (a list, or text split on commas, spaces and new lines),
    normalised and unique; ValidationError naming each entry that is not a host."""
    if value is None:
        return []
    parts = re.split(r"[\s,]+", value) if isinstance(value, str) else list(value)
    cleaned: list[str] = []
    bad: list[str] = []
    for part in parts:
        if not isinstance(part, str) or not part.strip():
            continue
        entry = _normal(part)
        if entry.startswith("*."):
            entry = "*." + _ascii(entry[2:])
        else:
            entry = _ascii(entry)
        if not (_is_ip(entry) or _NAME.match(entry)) or _too_wide(entry):
            bad.append(part.strip())
        elif entry not in cleaned:
            cleaned.append(entry)
    if bad:
        raise ValidationError(
            f"Not a host: {', '.join(bad)}. Write host names such as api.github.com or "
            "*.example.com (no scheme, path or port)."
        )
    if len(cleaned) > MAX_HOSTS:
        raise ValidationError(f"At most {MAX_HOSTS} hosts.")
    return cleaned


def _too_wide(entry: str) -> bool:
    # "*.com" would send the secret to anyone's domain: a wildcard needs a registered domain.
    return entry.startswith("*.") and entry.count(".") < 2


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether a URL's ``host`` is one of ``allowed`` (entries as ``hosts_clean`` gives them)."""
    host = _ascii(_normal(host))
    if not host:
        return False
    for entry in allowed:
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and not _is_ip(host):
                return True
        elif host == entry:
            return True
    return False
