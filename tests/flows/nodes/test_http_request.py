"""The HTTP request node against a real local server: how variables are filled (encoded in the
URL, escaped in a JSON body), statuses that the flow reads, and the failures that stop it (a
refused address, a timeout, a response too large), in the node and through the real worker."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from flows.models import NodeResult, RunStatus
from flows.nodes import node_types
from flows.schema import GraphError, check_graph
from tests.flows.nodes.graphs import edge, graph, node, run_graph

HTTP = node_types()["http_request"]


class _Api(BaseHTTPRequestHandler):
    """Answers by path; records every request it gets."""

    server: ApiServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        parts = urlsplit(self.path)
        self.server.received.append(
            {
                "method": self.command,
                "path": parts.path,
                "query": parse_qs(parts.query),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )
        if parts.path.startswith("/slow"):
            time.sleep(3)
        if parts.path.startswith("/redirect"):
            self._send(302, b"", "text/plain", {"Location": "/items/after-redirect"})
        elif parts.path.startswith("/missing"):
            self._send(404, b"no such item", "text/plain")
        elif parts.path.startswith("/broken"):
            self._send(503, b'{"error": "down for maintenance"}', "application/json")
        elif parts.path.startswith("/big"):
            self._send(200, b"x" * 3000, "text/plain")
        else:
            answer = {"method": self.command, "path": parts.path, "echo": body}
            extra = {"X-Served-By": "local"}
            self._send(200, json.dumps(answer).encode(), "application/json", extra)

    def _send(self, status: int, body: bytes, content_type: str, headers=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("X-Trace", "one")
        self.send_header("X-Trace", "two")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Api)
        self.received: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def api_server():
    server = ApiServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def api(api_server, settings):
    """The local server, reachable: the studio refuses loopback unless an operator allows it."""
    settings.STUDIO_EGRESS_ALLOW = ["127.0.0.1"]
    api_server.received.clear()
    return api_server


def call(inputs: dict | None = None, **settings):
    config = HTTP.Config.model_validate(settings)
    return asyncio.run(HTTP.arun(None, config, inputs or {}))


def failure(inputs: dict | None = None, **settings) -> str:
    with pytest.raises(Exception) as caught:  # noqa: B017 - the node's reason is what matters
        call(inputs, **settings)
    return str(caught.value)


# --- the node's settings --------------------------------------------------------------------


def test_the_inputs_are_the_variables_of_url_headers_query_and_body():
    config = HTTP.Config.model_validate(
        {
            "method": "POST",
            "url": "https://api.example.com/items/{{item_id}}",
            "headers": {"Authorization": "Bearer {{token}}"},
            "query": {"lang": "{{llm_1.lang}}"},
            "body": '{"note": "{{note}}", "count": {{count}}}',
            "body_type": "json",
        }
    )
    assert HTTP.input_ports(config) == {
        "item_id": "any",
        "token": "any",
        "llm_1.lang": "any",
        "note": "any",
        "count": "any",
    }
    assert HTTP.output_ports(config) == {
        "status": "number",
        "body": "text",
        "json": "json",
        "headers": "json",
    }
    assert HTTP.queue(config, workspace_id=1) == "flows"
    assert (HTTP.group, HTTP.label) == ("Tools", "HTTP request") and HTTP.description


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"url": "ftp://files.example.com/a"}, "the URL must start with http:// or https://"),
        ({"url": "https:///path"}, "the URL has no host"),
        ({"url": "https://a.example", "method": "TRACE"}, "method: Input should be 'GET'"),
        ({"url": "https://a.example", "timeout_s": 0}, "timeout_s: Input should be greater"),
        ({"url": "https://a.example", "headers": {"Bad Name": "x"}}, "'Bad Name' is not a header"),
        ({"url": "https://a.example", "body": "{}"}, "there is a body but the body type is none"),
        ({"url": "https://a.example", "body": '{"a": }', "body_type": "json"}, "body: not JSON"),
    ],
)
def test_bad_settings_are_refused_at_save_naming_the_node(settings, message):
    data = graph(
        node("call", "http_request", settings),
        edges=[edge("call.body", "output_1.text")],
    )
    with pytest.raises(GraphError) as caught:
        check_graph(data)
    assert any(e.startswith("node 'call': ") and message in e for e in caught.value.errors), (
        caught.value.errors
    )


# --- requests against the local server ------------------------------------------------------


def test_url_variables_are_percent_encoded_and_the_answer_comes_back_whole(api):
    output = call(
        {"item_id": "a/b c?d", "token": "s3cret", "lang": "en&fr"},
        url=f"{api.url}/items/{{{{item_id}}}}",
        headers={"Authorization": "Bearer {{token}}"},
        query={"lang": "{{lang}}", "fixed": "1"},
    )

    (received,) = api.received
    # The value stays one path segment: "/" and "?" cannot add a segment or a query.
    assert received["path"] == "/items/a%2Fb%20c%3Fd"
    assert received["query"] == {"lang": ["en&fr"], "fixed": ["1"]}
    assert received["headers"]["authorization"] == "Bearer s3cret"
    assert output.outputs["status"] == 200
    assert output.outputs["json"] == {"method": "GET", "path": "/items/a%2Fb%20c%3Fd", "echo": ""}
    assert json.loads(output.outputs["body"]) == output.outputs["json"]
    headers = output.outputs["headers"]
    assert headers["x-served-by"] == "local" and headers["x-trace"] == "one, two"
    assert output.details["status"] == 200


def test_a_json_body_stays_json_whatever_the_values(api):
    inputs = {"name": 'Ann "the boss"\nO\'Neil', "count": 3, "tags": ["a", "b"], "ok": True}
    body = '{"who": "Dear {{name}}", "count": {{count}}, "tags": {{tags}}, "ok": {{ok}}}'
    call(inputs, method="POST", url=f"{api.url}/items", body=body, body_type="json")

    (received,) = api.received
    assert received["method"] == "POST"
    assert received["headers"]["content-type"] == "application/json"
    assert json.loads(received["body"]) == {
        "who": 'Dear Ann "the boss"\nO\'Neil',
        "count": 3,
        "tags": ["a", "b"],
        "ok": True,
    }


def test_form_and_text_bodies(api):
    call(
        {"name": "Zoë & co", "n": 2},
        method="PUT",
        url=f"{api.url}/items/1",
        body="name={{name}}&n={{n}}",
        body_type="form",
    )
    call(
        {"name": "Zoë"},
        method="PATCH",
        url=f"{api.url}/items/1",
        headers={"Content-Type": "text/markdown"},
        body="Hello {{name}}",
        body_type="text",
    )

    form, text = api.received
    assert form["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(form["body"]) == {"name": ["Zoë & co"], "n": ["2"]}
    assert (text["method"], text["body"]) == ("PATCH", "Hello Zoë")
    assert text["headers"]["content-type"] == "text/markdown"  # the node's own header wins


def test_an_error_status_is_an_answer_the_flow_can_branch_on(api):
    missing = call(url=f"{api.url}/missing")
    assert missing.outputs["status"] == 404
    assert (missing.outputs["body"], missing.outputs["json"]) == ("no such item", None)

    broken = call(url=f"{api.url}/broken", method="DELETE")
    assert broken.outputs["status"] == 503
    assert broken.outputs["json"] == {"error": "down for maintenance"}


def test_redirects_are_followed(api):
    output = call(url=f"{api.url}/redirect")
    assert output.outputs["status"] == 200
    assert output.outputs["json"]["path"] == "/items/after-redirect"
    assert [r["path"] for r in api.received] == ["/redirect", "/items/after-redirect"]


def test_loopback_is_refused_unless_an_operator_allows_it(api, settings):
    settings.STUDIO_EGRESS_ALLOW = []
    message = failure(url=f"{api.url}/items/1")
    assert "the request was refused" in message and "does not call" in message
    assert api.received == []


def test_a_slow_server_fails_the_node_at_its_timeout(api):
    started = time.monotonic()
    message = failure(url=f"{api.url}/slow", timeout_s=1)
    assert message == f"no answer from {api.url.removeprefix('http://')} within 1 s"
    assert time.monotonic() - started < 2.5


def test_a_response_over_the_limit_fails_the_node(api):
    assert call(url=f"{api.url}/big", max_response_kb=3).outputs["body"] == "x" * 3000
    assert failure(url=f"{api.url}/big", max_response_kb=2) == "the response is larger than 2 kB"


# --- through the worker ---------------------------------------------------------------------


def lookup_graph(url: str) -> dict:
    """input (item_id) → GET url → output (status, body)."""
    return graph(
        node("lookup", "http_request", {"url": url}),
        edges=[
            edge("input_1.item_id", "lookup.item_id"),
            edge("lookup.status", "output_1.status"),
            edge("lookup.body", "output_1.body"),
        ],
        inputs={"item_id": "text"},
        outputs={"status": "number", "body": "text"},
    )


def test_a_private_address_fails_the_run_with_the_reason(worker, workspace, owner):
    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=lookup_graph("http://10.0.0.1:9/items/{{item_id}}"),
        inputs={"item_id": "7"},
    )

    assert run.status == RunStatus.FAILED
    assert "node 'lookup'" in run.error and "the request was refused" in run.error
    assert "10.0.0.1" in run.error


def test_a_flow_calls_an_api_on_the_worker(worker_may_call_loopback, worker, api, workspace, owner):
    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=lookup_graph(f"{api.url}/items/{{{{item_id}}}}"),
        inputs={"item_id": "42"},
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["status"] == 200
    assert json.loads(run.outputs["body"])["path"] == "/items/42"
    assert NodeResult.objects.get(run=run, node_id="lookup").queue == "flows"
