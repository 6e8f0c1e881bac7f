"""Outbound HTTP refuses the studio's own network unless an operator allows it for that use (model
endpoints, or what members fetch), on every hop, in every notation of an address, and without
telling the caller what an internal name resolves to."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from flows.nodes.http_request import HttpRequestNode
from studio import egress
from tests.catalog.remote_server import RemoteServer, Reply, text_events

OWN_NETWORK = "does not call"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith("/redirect"):
            target = self.path.split("to=", 1)[1]
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
            return
        body = f"host={self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://[::1]:{port}/",
        "http://2130706433:{port}/",  # 127.0.0.1 written as one number
        "http://0x7f.1:{port}/",  # in hex, with the last part covering three bytes
        "http://0x7f000001:{port}/",
        "http://017700000001:{port}/",  # in octal
        "http://127.1:{port}/",
        "http://0:{port}/",
        "http://0.0.0.0:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://[0:0:0:0:0:ffff:7f00:1]:{port}/",
    ],
)
def test_the_studios_own_network_is_refused(server, url):
    with egress.client() as client, pytest.raises(egress.EgressRefused, match=OWN_NETWORK):
        client.get(url.format(port=server))


def test_an_octal_address_that_httpx_cannot_parse_never_leaves(server):
    # glibc reads 0177.0.0.1 as 127.0.0.1; httpx refuses the URL before any lookup.
    with egress.client() as client, pytest.raises(httpx.InvalidURL):
        client.get(f"http://0177.0.0.1:{server}/")


@pytest.mark.parametrize(
    "url",
    [
        # NAT64, well-known prefix (RFC 6052): the gateway would connect to the IPv4 address.
        "http://[64:ff9b::7f00:1]:{port}/",
        "http://[64:ff9b::127.0.0.1]:{port}/",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[64:ff9b::a00:7]/",
        "http://[64:ff9b::c0a8:1]/",
        # NAT64, local-use prefix (RFC 8215).
        "http://[64:ff9b:1::7f00:1]:{port}/",
        "http://[64:ff9b:1:a9fe:a9:fe00::]/",
        # 6to4 (RFC 3056): 2002:AABB:CCDD::/48 is the site behind IPv4 AA.BB.CC.DD.
        "http://[2002:7f00:1::1]:{port}/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[2002:a00:1::1]/",
        # IPv4-compatible (RFC 4291, deprecated) and SIIT's IPv4-translated form.
        "http://[::7f00:1]:{port}/",
        "http://[::127.0.0.1]:{port}/",
        "http://[::a9fe:a9fe]/",
        "http://[::ffff:0:7f00:1]:{port}/",
        # Teredo (RFC 4380): the client 127.0.0.1, stored inverted in the last 32 bits.
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
        "http://[::ffff:a9fe:a9fe]/",
    ],
)
def test_ipv6_addresses_carrying_an_internal_ipv4_address_are_refused(server, url):
    with egress.client() as client, pytest.raises(egress.EgressRefused, match=OWN_NETWORK):
        client.get(url.format(port=server))


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("64:ff9b::808:808", "64:ff9b::808:808"),  # DNS64 answers so on IPv6-only networks
        ("::ffff:8.8.8.8", "8.8.8.8"),  # connected to over IPv4
        ("2606:4700:4700::1111", "2606:4700:4700::1111"),
    ],
)
def test_ipv6_addresses_of_public_hosts_are_allowed(host, address):
    assert str(egress.resolve(host, 443)) == address


def test_deprecated_transition_addresses_are_refused_even_for_public_hosts():
    for host in ("2002:808:808::1", "::808:808", "64:ff9b:1::808:808"):
        with pytest.raises(egress.EgressRefused, match=OWN_NETWORK):
            egress.resolve(host, 443)


def test_a_refusal_does_not_say_what_an_internal_name_resolves_to(server, caplog):
    with egress.client() as client, pytest.raises(egress.EgressRefused) as refused:
        client.get(f"http://localhost:{server}/")
    message = str(refused.value)
    assert "'localhost' is refused" in message and OWN_NETWORK in message
    assert "127.0.0.1" not in message and "::1" not in message


def test_other_schemes_are_refused():
    with egress.client() as client, pytest.raises(httpx.RequestError):
        client.get("file:///etc/passwd")


def test_an_allowed_network_is_reached_and_keeps_its_host_header(server, settings):
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1/32"]
    with egress.client() as client:
        response = client.get(f"http://127.0.0.1:{server}/hello")
    assert response.status_code == 200
    assert response.text == f"host=127.0.0.1:{server}"


def test_an_allowed_network_is_reached_in_its_ipv4_mapped_form(server, settings):
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.0/8"]
    with egress.client() as client:
        response = client.get(f"http://[::ffff:127.0.0.1]:{server}/")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("allowed", "refused"), [(egress.MODELS, egress.FETCH), (egress.FETCH, egress.MODELS)]
)
def test_a_network_trusted_for_one_use_stays_closed_to_the_other(
    server, settings, allowed, refused
):
    setattr(settings, allowed.setting, ["127.0.0.1/32", "localhost"])
    for host in ("127.0.0.1", "localhost"):
        with egress.client(purpose=allowed) as client:
            assert client.get(f"http://{host}:{server}/").status_code == 200
        with egress.client(purpose=refused) as client, pytest.raises(egress.EgressRefused) as e:
            client.get(f"http://{host}:{server}/")
        # The refusal names the list that would open it, for the operator to decide.
        assert refused.setting in str(e.value)


def test_the_default_use_is_the_strict_one_for_what_members_fetch(server, settings):
    settings.STUDIO_EGRESS_ALLOW_MODELS = ["127.0.0.1/32"]
    with egress.client() as client, pytest.raises(egress.EgressRefused, match="ALLOW_FETCH"):
        client.get(f"http://127.0.0.1:{server}/")


def test_the_former_single_list_still_counts_for_both_uses(server, settings):
    settings.STUDIO_EGRESS_ALLOW = ["127.0.0.1/32"]
    for purpose in (egress.MODELS, egress.FETCH):
        with egress.client(purpose=purpose) as client:
            assert client.get(f"http://127.0.0.1:{server}/").status_code == 200


@pytest.fixture
def model_server():
    remote = RemoteServer().start()
    remote.script(Reply(events=text_events("Hello", " there")))
    yield remote
    remote.stop()


def test_a_model_fleet_trusted_by_the_operator_stays_closed_to_http_nodes(model_server, settings):
    """The real callers: the remote model engine reaches the fleet, an HTTP node does not."""
    from catalog.engines import engine_class
    from catalog.engines.base import EngineSpec, GenerationRequest

    settings.STUDIO_EGRESS_ALLOW_MODELS = ["127.0.0.1"]
    spec = EngineSpec("openai_compatible", "m", {"base_url": f"{model_server.url}/v1"})
    engine = engine_class("openai_compatible")(spec)
    request = GenerationRequest([{"role": "user", "content": "hi"}])
    assert asyncio.run(engine.generate(request)).text == "Hello there"

    config = HttpRequestNode.Config.model_validate(
        {"url": f"{model_server.url}/v1/chat/completions"}
    )
    with pytest.raises(PermissionError, match=OWN_NETWORK):
        asyncio.run(HttpRequestNode().arun(None, config, {}))
    assert len(model_server.requests) == 1


def test_a_redirect_into_the_private_network_is_refused_at_the_hop(server, settings):
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1"]
    hop = f"http://127.0.0.2:{server}/secret"
    with egress.client(follow_redirects=True) as client:
        with pytest.raises(egress.EgressRefused, match="127.0.0.2"):
            client.get(f"http://127.0.0.1:{server}/redirect?to={hop}")


def test_a_name_with_any_private_address_is_refused(monkeypatch, caplog):
    """DNS is the network boundary: a name may answer with a public and a private address."""
    real = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        if host == "mixed.example":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 80)),
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    with caplog.at_level(logging.WARNING, logger="studio.egress"):
        with pytest.raises(egress.EgressRefused, match="'mixed.example' is refused") as refused:
            egress.resolve("mixed.example", 80)
    assert "10.0.0.7" not in str(refused.value)
    # The operator, and only the operator, can read what it resolved to.
    assert "10.0.0.7" in caplog.text


def test_ports_can_be_restricted(server, settings):
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1/32"]
    settings.STUDIO_EGRESS_PORTS = [443]
    with egress.client() as client, pytest.raises(egress.EgressRefused, match="port"):
        client.get(f"http://127.0.0.1:{server}/")


def test_the_async_client_checks_the_same_way(server, settings):
    async def fetch(url: str) -> httpx.Response:
        async with egress.async_client() as client:
            return await client.get(url)

    with pytest.raises(egress.EgressRefused):
        asyncio.run(fetch(f"http://127.0.0.1:{server}/"))
    settings.STUDIO_EGRESS_ALLOW_FETCH = ["127.0.0.1/32"]
    assert asyncio.run(fetch(f"http://127.0.0.1:{server}/")).status_code == 200


def test_a_large_response_is_cut_off():
    with pytest.raises(egress.EgressRefused, match="larger than"):
        egress.read_limited([b"x" * 600, b"y" * 600], limit=1000)


def test_an_endless_line_is_cut_off():
    async def lines(chunks: list[bytes]) -> list[str]:
        async def source():
            for chunk in chunks:
                yield chunk

        bounded = egress.aiter_lines_limited(source(), line_limit=10, total_limit=100)
        return [line async for line in bounded]

    # CR, LF and CRLF end a line, also when a chunk ends between CR and LF; U+2028 does not.
    assert asyncio.run(lines([b"a\r", b"\nb\rc\n", "d\u2028e\n\nf".encode()])) == [
        "a",
        "b",
        "c",
        "d\u2028e",
        "",
        "f",
    ]
    with pytest.raises(egress.EgressRefused, match="longer than 10 characters"):
        asyncio.run(lines([b"x" * 6, b"x" * 6, b"\n"]))
    with pytest.raises(egress.EgressRefused, match="larger than 100 bytes"):
        asyncio.run(lines([b"short\n"] * 20))
