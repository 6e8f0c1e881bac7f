"""The one way the studio makes outbound HTTP requests: an SSRF-safe httpx client.

A URL from a user (a remote model endpoint, a document to fetch, an HTTP node) could point at the
studio's own network: the metadata service, the database, Redis, an admin port. Every request,
and every redirect hop, goes through ``SafeTransport``, which
- resolves the host itself and refuses it if any address is loopback, private, link-local,
  multicast, reserved or unspecified (``STUDIO_EGRESS_ALLOW`` lists networks or hosts an
  operator trusts, such as an in-cluster vLLM fleet);
- connects to the address it checked, not to a second lookup of the name (no DNS rebinding),
  keeping the name for the ``Host`` header and TLS (SNI and certificate checks);
- allows only http and https, and the ports in ``STUDIO_EGRESS_PORTS`` when that is set.
Callers set their own timeouts; responses are theirs to bound (``read_limited``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpx
from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(httpx.RequestError):
    """The studio will not send this request: the reason names the host and why."""


def _allowed_networks() -> tuple[list[Network], set[str]]:
    networks: list[Network] = []
    hosts: set[str] = set()
    for item in getattr(settings, "STUDIO_EGRESS_ALLOW", []):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower())
    return networks, hosts


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int) -> Address:
    """The address to connect to for ``host``, or EgressRefused. Every address the name has
    must be allowed: a name with one public and one private address is refused."""
    networks, hosts = _allowed_networks()
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EgressRefused(f"cannot resolve {host!r}: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise EgressRefused(f"{host!r} has no address")
    trusted_name = host.lower() in hosts
    for address in addresses:
        if trusted_name or _public(address) or any(address in net for net in networks):
            continue
        raise EgressRefused(
            f"{host!r} resolves to {address}, an address the studio does not call "
            "(private, loopback, link-local or reserved); an operator can allow it with "
            "STUDIO_EGRESS_ALLOW"
        )
    return addresses[0]


def _check_port(url: httpx.URL) -> None:
    ports = getattr(settings, "STUDIO_EGRESS_PORTS", [])
    port = url.port or (443 if url.scheme == "https" else 80)
    if ports and port not in ports:
        raise EgressRefused(f"port {port} is not among the allowed ports {ports}")


class SafeTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Checks each request's destination, then sends it to the checked address."""

    def __init__(self, **transport_options: Any) -> None:
        self._sync = httpx.HTTPTransport(**transport_options)
        self._async = httpx.AsyncHTTPTransport(**transport_options)

    def _pin(self, request: httpx.Request) -> httpx.Request:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise EgressRefused(f"the scheme {url.scheme!r} is not allowed", request=request)
        _check_port(url)
        host = url.host
        try:
            address = resolve(host, url.port or (443 if url.scheme == "https" else 80))
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


def client(**options: Any) -> httpx.Client:
    """A synchronous client whose every request (and redirect) is checked."""
    options.setdefault("timeout", DEFAULT_TIMEOUT)
    return httpx.Client(transport=SafeTransport(), trust_env=False, **options)


def async_client(**options: Any) -> httpx.AsyncClient:
    """An asynchronous client whose every request (and redirect) is checked."""
    options.setdefault("timeout", DEFAULT_TIMEOUT)
    return httpx.AsyncClient(transport=SafeTransport(), trust_env=False, **options)


def read_limited(chunks: Iterable[bytes], limit: int) -> bytes:
    """Join a response's chunks, refusing more than ``limit`` bytes."""
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise EgressRefused(f"the response is larger than {limit:,} bytes")
    return bytes(body)
