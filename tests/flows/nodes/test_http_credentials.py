"""Secrets and the HTTP request node: a key typed into a header is refused at save (a graph is
stored, shown, exported and audited in plain text); the node names a stored credential instead,
which the worker decrypts when it sends and only to a host an admin allowed for it. Nothing a
viewer can read (the export, the version file, the audit log, the panel, the run) holds it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from pytest_django.asserts import assertRedirects

from catalog.hosts import host_allowed, hosts_clean
from catalog.models import Credential
from catalog.services.credentials import credential_create, credential_hosts_set
from flows.models import FlowVersion, NodeResult, RunSource, RunStatus, VersionKind
from flows.schema import GraphError, check_graph
from flows.services import flow_create, flow_publish, run_create
from flows.services.transfer import ImportRefused, flow_export, flow_import
from tests.flows.helpers import logged_events, wait_for_run
from tests.flows.nodes.graphs import edge, graph, node, run_graph
from workspaces.audit import audit_csv_rows
from workspaces.models import AuditEvent

SECRET = "ghp_Zr7Tq2mW9xKc4LpB0vNa"


class _Recorder(BaseHTTPRequestHandler):
    """Records each request's path and headers; ``/away`` redirects to another host name."""

    server: Recorder

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.received.append(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        )
        if self.path.startswith("/away"):
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_port}/stolen")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.received: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


@pytest.fixture(scope="module")
def recorder_server():
    server = Recorder()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def recorder(recorder_server):
    """The server, emptied; the worker reaches it through ``worker_may_call_loopback``."""
    recorder_server.received.clear()
    return recorder_server


@pytest.fixture
def credential(workspace, owner):
    return credential_create(
        workspace=workspace,
        name="GitHub",
        secret=SECRET,
        allowed_hosts="127.0.0.1, api.github.com",
        actor=owner,
    )


@pytest.fixture
def editor(make_member):
    return make_member("editor", username="eddie")


def call_graph(url: str, **config) -> dict:
    """input (message) → GET url, with ``config`` → output (status, body)."""
    return graph(
        node("call", "http_request", {"url": url, **config}),
        edges=[
            edge("input_1.message", "call._trigger"),
            edge("call.status", "output_1.status"),
            edge("call.body", "output_1.body"),
        ],
        outputs={"status": "number", "body": "text"},
    )


def problems(data: dict, workspace, user) -> str:
    with pytest.raises(GraphError) as caught:
        check_graph(data, workspace, user)
    return " ".join(caught.value.errors)


# --- typed-in secrets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {SECRET}"},
        {"X-Api-Key": SECRET},
        {"cookie": f"session={SECRET}"},
        {"Proxy-Authorization": f"Basic {SECRET}"},
        {"X-Auth-Token": "Bearer {{input_1.message}} " + SECRET},
    ],
)
def test_a_secret_typed_into_a_header_is_refused_at_save(workspace, owner, headers):
    data = call_graph("https://api.github.com/user", headers=headers)
    message = problems(data, workspace, owner)
    assert "store the key as a credential" in message
    with pytest.raises(GraphError):
        flow_create(workspace=workspace, slug="leaky", name="Leaky", graph=data, user=owner)
    envelope = {"studio_flow": 1, "name": "Leaky", "graph": data}
    with pytest.raises(ImportRefused, match="store the key as a credential"):
        flow_import(
            workspace=workspace, data=json.dumps(envelope).encode(), filename="f.json", user=owner
        )
    assert SECRET not in json.dumps(list(AuditEvent.objects.values()), default=str)


def test_variables_in_secret_headers_and_ordinary_headers_are_accepted(workspace, owner):
    headers = {
        "Authorization": "Bearer {{input_1.message}}",
        "X-Api-Key": "{{input_1.message}}",
        "Accept": "application/json",
    }
    check_graph(call_graph("https://api.github.com/user", headers=headers), workspace, owner)


def test_the_panel_refuses_a_typed_secret_and_the_canvas_does_not_keep_it(client, workspace, owner):
    flow = flow_create(
        workspace=workspace,
        slug="caller",
        name="Caller",
        graph=call_graph("https://api.github.com/user"),
        user=owner,
    )
    client.force_login(owner)
    response = client.post(
        reverse("flows:flow-editor-node", args=[flow.slug]),
        {
            "node": "call",
            "graph": json.dumps(call_graph("https://api.github.com/user")),
            "config.method": "GET",
            "config.url": "https://api.github.com/user",
            "config.headers": json.dumps({"Authorization": f"token {SECRET}"}),
            "config.body_type": "none",
            "config.timeout_s": "10",
            "config.max_response_kb": "1024",
        },
    )
    assert response.status_code == 200
    assert "store the key as a credential" in response.content.decode()
    applied = json.loads(response.headers["HX-Trigger"])["studio:node-config"]
    assert applied["valid"] is False
    assert SECRET not in json.dumps(applied)


def test_a_secret_saved_before_the_rule_is_masked_in_exports_and_the_panel(
    client, workspace, owner
):
    flow = flow_create(
        workspace=workspace,
        slug="old",
        name="Old",
        graph=call_graph("https://api.github.com/user"),
        user=owner,
    )
    legacy = call_graph("https://api.github.com/user", headers={"Authorization": f"token {SECRET}"})
    version = FlowVersion.objects.create(
        flow=flow, kind=VersionKind.VERSION, number=2, graph=legacy, created_by=owner
    )
    for fmt in ("json", "yaml"):
        exported = flow_export(flow=flow, version=version, fmt=fmt).content.decode()
        assert SECRET not in exported and "••••" in exported
    client.force_login(owner)
    panel = client.post(
        reverse("flows:flow-editor-panel", args=[flow.slug]),
        {"node": "call", "graph": json.dumps(legacy)},
    )
    assert panel.status_code == 200
    assert SECRET not in panel.content.decode()
    # The pages that show stored graphs: the editor (a draft), the flow page, the comparison.
    flow.draft = legacy
    flow.save(update_fields=["draft"])
    pages = [
        reverse("flows:flow-editor", args=[flow.slug]),
        reverse("flows:flow-detail", args=[flow.slug]),
        reverse("flows:flow-history", args=[flow.slug]) + "?a=1&b=2",
        reverse("flows:flow-history", args=[flow.slug]) + "?a=2&b=draft",
    ]
    for url in pages:
        page = client.get(url)
        assert page.status_code == 200, url
        assert SECRET not in page.content.decode(), url


# --- credentials: who decides where they go -------------------------------------------------


def test_allowed_hosts_are_host_names_and_match_exactly_or_by_subdomain():
    assert hosts_clean("API.GitHub.com., *.example.com\n10.0.0.5") == [
        "api.github.com",
        "*.example.com",
        "10.0.0.5",
    ]
    for bad in ("https://api.github.com", "api.github.com/x", "*.com", "*", "host:443"):
        with pytest.raises(Exception, match="Not a host"):
            hosts_clean(bad)
    allowed = ["api.github.com", "*.example.com"]
    assert host_allowed("API.github.com", allowed)
    assert host_allowed("eu.api.example.com", allowed)
    assert not host_allowed("example.com", allowed)
    assert not host_allowed("api.github.com.evil.io", allowed)
    assert not host_allowed("evilexample.com", allowed)


def test_an_editor_cannot_send_a_credential_to_a_host_of_theirs(workspace, editor, credential):
    message = problems(
        call_graph("https://attacker.example/steal", credential="GitHub"), workspace, editor
    )
    assert "may be sent only to 127.0.0.1, api.github.com; not to attacker.example" in message
    # A host filled in at run time could be anyone's.
    message = problems(
        call_graph("https://{{input_1.message}}/steal", credential="GitHub"), workspace, editor
    )
    assert "needs a host without variables" in message
    check_graph(call_graph("https://api.github.com/user", credential="GitHub"), workspace, editor)


def test_a_missing_credential_and_one_closed_to_requests_get_the_same_answer(
    workspace, owner, credential
):
    closed = credential_create(workspace=workspace, name="Closed", secret=SECRET, actor=owner)
    answers = [
        problems(
            call_graph("https://api.github.com/user", credential=name), workspace, owner
        ).replace(repr(name), "NAME")
        for name in ("Nope", closed.name)
    ]
    assert answers[0] == answers[1] and "does not exist here or may not be used" in answers[0]


def test_only_whoever_manages_credentials_sets_their_hosts(client, make_member, credential):
    url = reverse("catalog:credential-hosts", args=[credential.id])
    for role in ("viewer", "editor"):
        client.force_login(make_member(role))
        assert client.post(url, {"allowed_hosts": "attacker.example"}).status_code == 403
    credential.refresh_from_db()
    assert credential.allowed_hosts == ["127.0.0.1", "api.github.com"]

    client.force_login(make_member("admin", username="ada"))
    assertRedirects(
        client.post(url, {"allowed_hosts": "api.github.com"}), reverse("catalog:credential-list")
    )
    credential.refresh_from_db()
    assert credential.allowed_hosts == ["api.github.com"]
    event = AuditEvent.objects.get(action="credential.hosts")
    assert event.after["allowed_hosts"] == ["api.github.com"]
    assert SECRET not in json.dumps([event.before, event.after])
    refused = client.post(url, {"allowed_hosts": "https://x.example/path"}, follow=True)
    assert "Not a host" in refused.content.decode()


# --- through the worker ---------------------------------------------------------------------


def published(flow_graph: dict, workspace, owner):
    flow = flow_create(
        workspace=workspace, slug="under-test", name="Under test", graph=flow_graph, user=owner
    )
    return flow_publish(flow=flow, user=owner)


def run_now(flow):
    run = run_create(
        flow=flow, version=flow.published_version, inputs={"message": "go"}, source=RunSource.STUDIO
    )
    return wait_for_run(run.id)


def leaked_anywhere(run, workspace, client, owner) -> list[str]:
    """Where a viewer could read ``SECRET`` after ``run``: the names of the places."""
    flow = run.flow
    version = flow.published_version
    events = AuditEvent.objects.filter(workspace=workspace)
    client.force_login(owner)
    places = {
        "export json": flow_export(flow=flow, version=version, fmt="json").content.decode(),
        "export yaml": flow_export(flow=flow, version=version, fmt="yaml").content.decode(),
        "version graph": json.dumps(version.graph),
        "audit": json.dumps(list(events.values()), default=str) + "".join(audit_csv_rows(events)),
        "panel": client.post(
            reverse("flows:flow-editor-panel", args=[flow.slug]),
            {"node": "call", "graph": json.dumps(version.graph)},
        ).content.decode(),
        "run": json.dumps([run.outputs, run.error, run.inputs], default=str),
        "trace": json.dumps(list(NodeResult.objects.filter(run=run).values()), default=str),
        "events": json.dumps(logged_events(run.id), default=str),
    }
    return [name for name, text in places.items() if SECRET in text]


@pytest.mark.parametrize(
    ("config", "header", "sent"),
    [
        ({}, "authorization", f"Bearer {SECRET}"),
        (
            {"credential_as": "header", "credential_header": "X-API-Key"},
            "x-api-key",
            SECRET,
        ),
    ],
    ids=["bearer", "header"],
)
def test_a_credential_reaches_an_allowed_host_through_the_worker(
    worker_may_call_loopback,
    worker,
    recorder,
    client,
    workspace,
    owner,
    credential,
    config,
    header,
    sent,
):
    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=call_graph(f"{recorder.url}/user", credential="GitHub", **config),
        inputs={"message": "go"},
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert recorder.received[0]["headers"][header] == sent
    assert leaked_anywhere(run, workspace, client, owner) == []


def test_a_credential_is_not_sent_where_it_may_no_longer_go(
    worker_may_call_loopback, worker, recorder, workspace, owner, credential
):
    """The allowed hosts are read when the request is sent: an admin's change holds for flows
    already published."""
    flow = published(call_graph(f"{recorder.url}/user", credential="GitHub"), workspace, owner)
    credential_hosts_set(credential=credential, allowed_hosts="api.github.com", actor=owner)

    run = run_now(flow)

    assert run.status == RunStatus.FAILED
    assert "may be sent only to api.github.com; not to 127.0.0.1" in run.error
    assert recorder.received == []


def test_a_redirect_does_not_carry_a_credential_to_another_host(
    worker_may_call_loopback, worker, recorder, workspace, owner, credential
):
    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=call_graph(
            f"{recorder.url}/away",
            credential="GitHub",
            credential_as="header",
            credential_header="X-API-Key",
        ),
        inputs={"message": "go"},
    )

    assert run.status == RunStatus.FAILED
    assert "not to localhost" in run.error
    assert [r["path"] for r in recorder.received] == ["/away"]


def test_a_deleted_credential_fails_the_run_without_sending_anything(
    worker_may_call_loopback, worker, recorder, workspace, owner, credential
):
    flow = published(call_graph(f"{recorder.url}/user", credential="GitHub"), workspace, owner)
    Credential.objects.filter(id=credential.id).delete()

    run = run_now(flow)

    assert run.status == RunStatus.FAILED
    assert "does not exist here or may not be used" in run.error
    assert recorder.received == []
