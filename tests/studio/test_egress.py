"""Outbound HTTP refuses the studio's own network unless an operator allows it, on every hop."""

from __future__ import annotations

import asyncio
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from studio import egress


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
        "http://0.0.0.0:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
)
def test_the_studios_own_network_is_refused(server, url):
    with egress.client() as client, pytest.raises(egress.EgressRefused, match="does not call"):
        client.get(url.format(port=server))


def test_other_schemes_are_refused():
    with egress.client() as client, pytest.raises(httpx.RequestError):
        client.get("file:///etc/passwd")


def test_an_allowed_network_is_reached_and_keeps_its_host_header(server, settings):
    settings.STUDIO_EGRESS_ALLOW = ["127.0.0.1/32"]
    with egress.client() as client:
        response = client.get(f"http://127.0.0.1:{server}/hello")
    assert response.status_code == 200
    assert response.text == f"host=127.0.0.1:{server}"


def test_a_redirect_into_the_private_network_is_refused_at_the_hop(server, settings):
    settings.STUDIO_EGRESS_ALLOW = ["127.0.0.1"]
    hop = f"http://127.0.0.2:{server}/secret"
    with egress.client(follow_redirects=True) as client:
        with pytest.raises(egress.EgressRefused, match="127.0.0.2"):
            client.get(f"http://127.0.0.1:{server}/redirect?to={hop}")


def test_a_name_with_any_private_address_is_refused(monkeypatch):
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
    with pytest.raises(egress.EgressRefused, match="10.0.0.7"):
        egress.resolve("mixed.example", 80)


def test_ports_can_be_restricted(server, settings):
    settings.STUDIO_EGRESS_ALLOW = ["127.0.0.1/32"]
    settings.STUDIO_EGRESS_PORTS = [443]
    with egress.client() as client, pytest.raises(egress.EgressRefused, match="port"):
        client.get(f"http://127.0.0.1:{server}/")


def test_the_async_client_checks_the_same_way(server, settings):
    async def fetch(url: str) -> httpx.Response:
        async with egress.async_client() as client:
            return await client.get(url)

    with pytest.raises(egress.EgressRefused):
        asyncio.run(fetch(f"http://127.0.0.1:{server}/"))
    settings.STUDIO_EGRESS_ALLOW = ["127.0.0.1/32"]
    assert asyncio.run(fetch(f"http://127.0.0.1:{server}/")).status_code == 200


def test_a_large_response_is_cut_off():
    with pytest.raises(egress.EgressRefused, match="larger than"):
        egress.read_limited([b"x" * 600, b"y" * 600], limit=1000)
