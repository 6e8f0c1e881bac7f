"""Agents leaving and arriving whole: export of the draft or a version as JSON or YAML, import
from a file (a file that is not an agent refused whole with every problem; a spec naming what
this workspace lacks imported as a draft with its problems listed), and who may do each."""

from __future__ import annotations

import json

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from pytest_django.asserts import assertContains, assertRedirects

from agents.models import Agent
from agents.services import SpecRefused, agent_create, agent_draft_save, agent_publish
from agents.transfer import MAX_FILE_BYTES
from workspaces.models import AuditEvent

SPEC = {
    "instructions": {"text": "Answer briefly.\nUse the calculator for sums."},
    "model": "echo",
    "tools": [{"tool": "calculator"}],
    "opening": "Hello!",
}


@pytest.fixture
def agent(workspace, owner, echo_model):
    """v1 published; the draft changed after it."""
    agent = agent_create(
        workspace=workspace,
        name="Maths",
        slug="maths",
        description="Sums.",
        spec=SPEC,
        actor=owner,
    )
    agent_publish(agent=agent, actor=owner)
    agent_draft_save(agent=agent, spec={**SPEC, "temperature": 0.5}, actor=owner)
    return agent


def export(client, slug: str, **params):
    return client.get(reverse("agents:agent-export", args=[slug]), params)


def upload(client, name: str, content: bytes | str):
    data = content.encode() if isinstance(content, str) else content
    return client.post(reverse("agents:agent-import"), {"file": SimpleUploadedFile(name, data)})


def envelope(**spec) -> dict:
    return {"studio_agent": 1, "name": "Imported", "slug": "imported", "spec": {**SPEC, **spec}}


def imported(workspace):
    return Agent.objects.filter(workspace=workspace).exclude(slug="maths")


# --- export ------------------------------------------------------------------------------------


def test_export_of_a_version_as_json_and_the_draft_as_yaml(client, viewer, agent):
    client.force_login(viewer)

    response = export(client, "maths", version=1)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert 'filename="maths-v1.json"' in response["Content-Disposition"]
    content = json.loads(response.content)
    assert content["studio_agent"] == 1 and content["slug"] == "maths"
    assert content["spec"] == agent.versions.get(number=1).spec
    assert content["spec"]["temperature"] is None

    draft = export(client, "maths", format="yaml")
    assert 'filename="maths-draft.yaml"' in draft["Content-Disposition"]
    assert yaml.safe_load(draft.content)["spec"]["temperature"] == 0.5
    assert "|" in draft.content.decode()  # the multi-line instructions read as written


def test_export_refuses_unknown_versions_formats_and_post(client, owner, outsider, agent):
    client.force_login(owner)
    assert export(client, "maths", version=7).status_code == 404
    assert export(client, "maths", version="x").status_code == 404
    assert export(client, "maths", format="xml").status_code == 400
    url = reverse("agents:agent-export", args=["maths"])
    assert client.post(url).status_code == 405
    client.force_login(outsider)
    assert export(client, "maths").status_code == 404


# --- import ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_exporting_then_importing_gives_the_same_agent(client, owner, workspace, agent, fmt):
    client.force_login(owner)
    exported = export(client, "maths", version=1, format=fmt)

    response = upload(client, f"maths-v1.{fmt}", exported.content)

    copy = Agent.objects.get(workspace=workspace, slug="maths-2")  # the slug was taken
    assertRedirects(response, reverse("agents:agent-detail", args=["maths-2"]))
    assert copy.draft == agent.versions.get(number=1).spec
    assert copy.name == "Maths" and copy.description == "Sums."
    assert copy.published_version is None
    entry = AuditEvent.objects.get(action="agent.import")
    assert entry.actor == owner and entry.after["slug"] == "maths-2"
    assert entry.after["slug_in_file"] == "maths" and entry.after["problems"] == []
    # It can be published as it is.
    assert agent_publish(agent=copy, actor=owner).number == 1


def test_a_spec_naming_what_this_workspace_lacks_is_imported_with_its_problems(
    client, owner, workspace, echo_model
):
    client.force_login(owner)
    content = envelope(
        model="gone",
        tools=[
            {"tool": "knowledge_search", "config": {"knowledge_base": "missing"}},
            {"tool": "flow", "config": {"flow": "nope"}},
            {"tool": "agent", "config": {"agent": "ghost"}},
            {"tool": "mcp", "config": {"url": "https://mcp.example.com/", "credential": "key"}},
        ],
    )

    response = upload(client, "imported.json", json.dumps(content))

    agent = Agent.objects.get(workspace=workspace, slug="imported")
    url = reverse("agents:agent-detail", args=["imported"])
    assertRedirects(response, url, fetch_redirect_response=False)
    assert agent.draft["model"] == "gone" and len(agent.draft["tools"]) == 4
    page = client.get(url)  # the builder, with each problem to fix before publishing
    for wanted in (
        "model &#x27;gone&#x27; is not in this workspace",
        "knowledge base",
        "flow &#x27;nope&#x27; is not a published flow",
        "agent &#x27;ghost&#x27; is not a published agent",
        "credential",
    ):
        assertContains(page, wanted)
    problems = AuditEvent.objects.get(action="agent.import").after["problems"]
    assert len(problems) == 5, problems
    with pytest.raises(SpecRefused):
        agent_publish(agent=agent, actor=owner)


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("f.json", "{not json", "file: not valid JSON"),
        ("f.json", '["a list"]', "file: expected an object with studio_agent, name and spec"),
        ("f.json", json.dumps({"name": "x", "spec": {}}), "studio_agent: this is not an agent"),
        ("f.json", json.dumps({"studio_flow": 1, "name": "x", "graph": {}}), "studio_agent:"),
        ("f.json", json.dumps(envelope(bogus=1)), "spec.bogus: Extra inputs are not permitted"),
        ("f.json", json.dumps({**envelope(), "extra": 1}), "extra: Extra inputs are not"),
        ("f.json", json.dumps(envelope(model=None)), "spec: choose a model or a route"),
        ("f.json", b"\xff\xfe\x00bad", "file: this is not UTF-8 text"),
        ("f.yaml", "a: &x [1]\nb: *x\n", "file: YAML anchors and aliases"),
        ("f.yaml", "!!python/object/apply:os.system ['true']", "file: not valid YAML"),
        ("f.json", "[" * 100_000 + "]" * 100_000, "file:"),
    ],
)
def test_files_that_are_not_agents_are_refused_whole_with_the_reason(
    client, owner, workspace, echo_model, name, content, error
):
    client.force_login(owner)

    response = upload(client, name, content)

    assert response.status_code == 400
    errors = response.context["import_errors"]
    assert any(e.startswith(error) for e in errors), errors
    assert not imported(workspace).exists()


def test_every_problem_of_a_file_is_listed_at_once(client, owner, workspace, echo_model):
    client.force_login(owner)
    content = {"studio_agent": 1, "name": "", "spec": {**SPEC, "strategy": "x", "tools": "no"}}

    response = upload(client, "f.json", json.dumps(content))

    errors = response.context["import_errors"]
    assert {e.split(":")[0] for e in errors} >= {"name", "spec.strategy", "spec.tools"}, errors


def test_a_file_over_the_size_limit_is_refused_unread(client, owner, workspace):
    client.force_login(owner)

    response = upload(client, "big.json", b" " * (MAX_FILE_BYTES + 1))

    assertContains(response, "file: larger than 1024 KB", status_code=400)
    assert not imported(workspace).exists()


def test_who_may_import(client, owner, viewer, outsider, workspace, echo_model):
    client.force_login(viewer)
    assert upload(client, "f.json", json.dumps(envelope())).status_code == 403
    assert client.get(reverse("agents:agent-import")).status_code == 403
    assert not Agent.objects.exists()

    client.force_login(outsider)  # into their own workspace, where the model is missing
    assert upload(client, "f.json", json.dumps(envelope())).status_code == 302
    assert Agent.objects.get().workspace.slug == "other"

    client.force_login(owner)
    assertContains(client.get(reverse("agents:agent-import")), "Import an agent")
    assert client.put(reverse("agents:agent-import")).status_code == 405


def test_the_pages_link_export_and_import(client, owner, viewer, agent):
    client.force_login(owner)
    versions = client.get(reverse("agents:agent-versions", args=["maths"]))
    assertContains(versions, reverse("agents:agent-export", args=["maths"]) + "?version=1")
    assertContains(versions, reverse("agents:agent-export", args=["maths"]) + "?format=yaml")
    assertContains(client.get(reverse("agents:agent-list")), reverse("agents:agent-import"))
    client.force_login(viewer)
    page = client.get(reverse("agents:agent-list"))
    assert reverse("agents:agent-import") not in page.content.decode()
