"""The one way the studio makes outbound HTTP requests: an SSRF-safe httpx client.

A URL from a user (a remote model endpoint, a document to fetch, an HTTP node) could point at the
studio's own network: the metadata service, the database, Redis, an admin port. Every request,
and every redirect hop, goes through ``SafeTransport``, which
- resolves the host itself and refuses it if any address is loopback, private, link-local,
  multicast, reserved or unspecified, including an IPv6 address that carries such an IPv4 address
  (see ``_public``);
- trusts only the networks and host names an operator lists for the request's ``Purpose``:
  ``STUDIO_EGRESS_ALLOW_MODELS`` for remote model endpoints, ``STUDIO_EGRESS_ALLOW_FETCH`` for
  what workspace members fetch (the HTTP node, URL ingestion). An in-cluster vLLM fleet trusted
  for models is thus not open to every workspace's HTTP nodes. ``STUDIO_EGRESS_ALLOW``, the
  former single list, still counts for both;
- connects to the address it checked, not to a second lookup of the name (no DNS rebinding),
  keeping the name for the ``Host`` header and TLS (SNI and certificate checks);
- allows only http and https, and the ports in ``STUDIO_EGRESS_PORTS`` when that is set.
A refusal names the host, never the address an internal name resolved to (that would map the
internal network for whoever asks); the address goes to the server log.
Callers set their own timeouts; responses are theirs to bound (``read_limited``,
``aread_limited``, ``aiter_lines_limited``).
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import logging
import re
import socket
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

log = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Purpose:
    """Who chose the destination, which decides the operator's allow list that applies."""

    name: str
    setting: str


# URLs that workspace members type (the HTTP node, URL ingestion, later MCP servers): the default,
# so that a caller that says nothing gets the strictest list.
FETCH = Purpose("user-driven fetches", "STUDIO_EGRESS_ALLOW_FETCH")
# Endpoints of remote model engines, which the catalog's admins set.
MODELS = Purpose("remote model endpoints", "STUDIO_EGRESS_ALLOW_MODELS")

# IPv6 ranges whose last 32 bits are an IPv4 address that the packet really goes to: the
# operating system's IPv4-mapped form, and the NAT64 well-known prefix (RFC 6052) that DNS64
# answers with on IPv6-only networks. Such an address is judged by the IPv4 address it carries,
# so that ``64:ff9b::7f00:1`` is loopback and ``64:ff9b::808:808`` the public 8.8.8.8.
_CARRIES_IPV4 = (ipaddress.IPv6Network("::ffff:0:0/96"), ipaddress.IPv6Network("64:ff9b::/96"))
# Transition ranges refused whatever they carry: deprecated ones (IPv4-compatible, RFC 4291;
# 6to4, RFC 7526; Teredo, whose relays are gone) that no real endpoint uses today, SIIT's
# IPv4-translated form, and the NAT64 local-use prefix (RFC 8215), where the IPv4 address may
# sit at any of six offsets, so it cannot be read off. An operator can still allow one by network.
_TRANSITION = (
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("2002::/16"),
    ipaddress.IPv6Network("2001::/32"),
)


class EgressRefused(httpx.RequestError):
    """The studio will not send this request: the reason names the host and why."""


def _allowed(purpose: Purpose) -> tuple[list[Network], set[str]]:
    networks: list[Network] = []
    hosts: set[str] = set()
    items = [*getattr(settings, purpose.setting, []), *getattr(settings, "STUDIO_EGRESS_ALLOW", [])]
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower())
    return networks, hosts


def _carried(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or NAT64 address goes to."""
    if isinstance(address, ipaddress.IPv6Address) and any(address in n for n in _CARRIES_IPV4):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _public(address: Address) -> bool:
    """Whether the address is on the public internet. Python's ``is_global`` alone changed
    between versions (3.11 counts reserved ranges and NAT64 as global), so every property that
    rules an address out is asked."""
    if (carried := _carried(address)) is not None:
        address = carried
    elif isinstance(address, ipaddress.IPv6Address) and any(address in n for n in _TRANSITION):
        return False
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_link_local
        or address.is_loopback
        or address.is_unspecified
        or getattr(address, "is_site_local", False)
    )


def _trusted(address: Address, networks: list[Network]) -> bool:
    # An operator who lists 10.0.0.0/8 means the hosts, whichever form the resolver gives.
    candidates = [address] + [c for c in [_carried(address)] if c is not None]
    return any(candidate in net for candidate in candidates for net in networks)


def resolve(host: str, port: int, purpose: Purpose = FETCH) -> Address:
    """The address to connect to for ``host``, or EgressRefused. Every address the name has
    must be allowed for ``purpose``: a name with one public and one private address is refused.
    An IPv4-mapped address comes back as the IPv4 address it maps."""
    networks, hosts = _allowed(purpose)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EgressRefused(f"cannot resolve {host!r}: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise EgressRefused(f"{host!r} has no address")
    trusted_name = host.lower() in hosts
    for address in addresses:
        if trusted_name or _public(address) or _trusted(address, networks):
            continue
        log.warning("egress refused for %s: %r resolves to %s", purpose.name, host, address)
        raise EgressRefused(
            f"the host {host!r} is refused: it is or resolves to an address the studio does not "
            "call (private, loopback, link-local or reserved); an operator can allow it for "
            f"{purpose.name} with {purpose.setting}"
        )
    # The IPv4 address itself, not its mapped form: a host without IPv6 can still reach it.
    return getattr(addresses[0], "ipv4_mapped", None) or addresses[0]


def _check_port(url: httpx.URL) -> None:
    ports = getattr(settings, "STUDIO_EGRESS_PORTS", [])
    port = url.port or (443 if url.scheme == "https" else 80)
    if ports and port not in ports:
        raise EgressRefused(f"port {port} is not among the allowed ports {ports}")


class SafeTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Checks each request's destination for ``purpose``, then sends it to the checked address."""

    def __init__(self, purpose: Purpose = FETCH, **transport_options: Any) -> None:
        self.purpose = purpose
        self._sync = httpx.HTTPTransport(**transport_options)
        self._async = httpx.AsyncHTTPTransport(**transport_options)

    def _pin(self, request: httpx.Request) -> httpx.Request:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise EgressRefused(f"the scheme {url.scheme!r} is not allowed", request=request)
        _check_port(url)
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            address = resolve(host, port, self.purpose)
        except EgressRefused as exc:
            raise EgressRefused(str(exc), request=request) from None
        # The Host header already names the host; TLS checks the certificate against it.
        request.url = url.copy_with(host=str(address))
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return request

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._sync.handle_request(self._pin(request))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # getaddrinfo blocks, and a slow resolver must not stall the worker's shared event loop.
        pinned = await asyncio.to_thread(self._pin, request)
        return await self._async.handle_async_request(pinned)

    def close(self) -> None:
        self._sync.close()

    async def aclose(self) -> None:
        await self._async.aclose()


DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def client(*, purpose: Purpose = FETCH, **options: Any) -> httpx.Client:
    """A synchronous client whose every request (and redirect) is checked for ``purpose``."""
    options.setdefault("timeout", DEFAULT_TIMEOUT)
    return httpx.Client(transport=SafeTransport(purpose), trust_env=False, **options)


def async_client(*, purpose: Purpose = FETCH, **options: Any) -> httpx.AsyncClient:
    """An asynchronous client whose every request (and redirect) is checked for ``purpose``."""
    options.setdefault("timeout", DEFAULT_TIMEOUT)
    return httpx.AsyncClient(transport=SafeTransport(purpose), trust_env=False, **options)


def _too_large(limit: int) -> EgressRefused:
    return EgressRefused(f"the response is larger than {limit:,} bytes")


def read_limited(chunks: Iterable[bytes], limit: int) -> bytes:
    """Join a response's chunks, refusing more than ``limit`` bytes."""
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


async def aread_limited(response: httpx.Response, limit: int) -> bytes:
    """A streamed response's body, refusing more than ``limit`` bytes: at once when its
    Content-Length says so, else as soon as that many have come."""
    if int(response.headers.get("content-length", "0") or "0") > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


# Server-sent events end a line with CR, LF or CRLF, and nothing else: splitting at every
# Unicode line break, as str.splitlines does, would cut JSON holding a raw U+2028.
_NEWLINE = re.compile(r"\r\n|\r|\n")


def _split_lines(text: str) -> list[str]:
    # str.split is many times faster than the pattern, and most streams end lines with LF alone.
    return _NEWLINE.split(text) if "\r" in text else text.split("\n")


async def aiter_lines_limited(
    chunks: AsyncIterable[bytes], *, line_limit: int, total_limit: int
) -> AsyncIterator[str]:
    """The UTF-8 lines of a streamed body, refusing a line longer than ``line_limit``
    characters (a server that never sends a newline) or more than ``total_limit`` bytes. Each
    chunk is scanned once, so a long line costs time in proportion to its length."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending: list[str] = []  # the line being received, in pieces
    pending_length = 0
    carry = ""  # a CR that ended a chunk: the first half of a CRLF, or a line end of its own
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > total_limit:
            raise _too_large(total_limit)
        text = carry + decoder.decode(chunk)
        carry = "\r" if text.endswith("\r") else ""
        *lines, rest = _split_lines(text.removesuffix("\r"))
        if lines:
            lines[0] = "".join(pending) + lines[0]
            pending, pending_length = [], 0
        pending.append(rest)
        pending_length += len(rest)
        if pending_length > line_limit or any(len(line) > line_limit for line in lines):
            raise EgressRefused(f"the response has a line longer than {line_limit:,} characters")
        for line in lines:
            yield line
    *lines, rest = _split_lines("".join(pending) + carry + decoder.decode(b"", final=True))
    for line in [*lines, rest] if rest else lines:
        yield line
