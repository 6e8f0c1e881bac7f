"""Flows leaving and arriving whole: export to JSON or YAML, import from a file (checked at the
edge, refused whole with every problem listed), and duplicate."""

from __future__ import annotations

import json

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from pytest_django.asserts import assertContains, assertRedirects

from flows.demo import assistant_graph
from flows.models import Flow, VersionKind
from flows.services import flow_version_save
from flows.services.transfer import MAX_FILE_BYTES
from workspaces.models import AuditEvent


@pytest.fixture
def flow(make_flow, echo_model, owner):
    """v1 published, v2 saved after it with a multi-line system prompt."""
    flow = make_flow(echo_model)
    flow.description = "Answers questions."
    flow.save()
    graph = assistant_graph(model="echo", max_tokens=32)
    graph["nodes"][1]["config"]["system"] = "Line one.\nLine two: {{not a var}}.\n"
    flow_version_save(flow=flow, graph=graph, user=owner)
    return flow


def export(client, flow, **params):
    return client.get(reverse("flows:flow-export", args=[flow.slug]), params)


def upload(client, name: str, content: bytes | str):
    data = content.encode() if isinstance(content, str) else content
    return client.post(reverse("flows:flow-import"), {"file": SimpleUploadedFile(name, data)})


def imported_flows(workspace):
    return Flow.objects.filter(workspace=workspace).exclude(slug="assistant")


# --- export ------------------------------------------------------------------------------------


def test_export_downloads_the_published_version_as_json(client, viewer, flow):
    client.force_login(viewer)

    response = export(client, flow)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="assistant-v1.json"'
    body = json.loads(response.content)
    assert body == {
        "studio_flow": 1,
        "name": "Assistant",
        "slug": "assistant",
        "description": "Answers questions.",
        "graph": flow.versions.get(number=1).graph,
    }
    assert list(body["graph"]) == ["nodes", "edges"]


def test_export_of_a_chosen_version_as_yaml(client, owner, flow):
    client.force_login(owner)

    response = export(client, flow, version=2, format="yaml")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="assistant-v2.yaml"'
    text = response.content.decode()
    assert "system: |\n" in text  # prompts read as written
    assert yaml.safe_load(text)["graph"] == flow.versions.get(number=2).graph


def test_export_of_an_unpublished_flow_takes_the_latest_version(
    client, owner, make_flow, echo_model
):
    flow = make_flow(echo_model, slug="draft-only", publish=False)
    flow_version_save(flow=flow, graph=assistant_graph(model="echo", max_tokens=9), user=owner)
    client.force_login(owner)

    response = export(client, flow)

    assert response["Content-Disposition"] == 'attachment; filename="draft-only-v2.json"'


def test_export_refuses_unknown_versions_and_formats(client, owner, flow):
    client.force_login(owner)

    assert export(client, flow, version=7).status_code == 404
    assert export(client, flow, version="latest").status_code == 404
    assertContains(export(client, flow, format="xml"), "choose json or yaml", status_code=400)


def test_export_hides_flows_of_other_workspaces_and_refuses_post(client, outsider, owner, flow):
    client.force_login(outsider)
    assert export(client, flow).status_code == 404

    client.force_login(owner)
    assert client.post(reverse("flows:flow-export", args=[flow.slug])).status_code == 405


# --- the round trip ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_exporting_then_importing_gives_the_same_graph(client, owner, workspace, flow, fmt):
    client.force_login(owner)
    exported = export(client, flow, version=2, format=fmt)

    response = upload(client, f"assistant-v2.{fmt}", exported.content)

    copy = Flow.objects.get(workspace=workspace, slug="assistant-2")
    assert response.status_code == 302
    assert response["Location"] in (
        reverse("flows:flow-detail", args=["assistant-2"]),
        f"/flows/{copy.slug}/edit",
    )
    [version] = copy.versions.all()
    assert version.graph == flow.versions.get(number=2).graph
    assert version.number == 1 and version.kind == VersionKind.VERSION
    assert version.note == f"Imported from assistant-v2.{fmt}"
    assert version.created_by == owner
    assert copy.draft == version.graph
    assert copy.draft_saved_by == owner
    assert (copy.name, copy.description) == ("Assistant", "Answers questions.")
    assert copy.published_version is None  # imported, not served
    assert AuditEvent.objects.filter(action="flow.import", target_id=str(copy.id)).exists()
    page = client.get(reverse("flows:flow-detail", args=["assistant-2"]))
    assertContains(page, "Imported Assistant as version 1.")


def test_importing_the_same_file_again_takes_the_next_free_slug(client, owner, workspace, flow):
    client.force_login(owner)
    content = export(client, flow).content

    for _ in range(2):
        upload(client, "flow.json", content)

    slugs = sorted(imported_flows(workspace).values_list("slug", flat=True))
    assert slugs == ["assistant-2", "assistant-3"]


# --- refused files -----------------------------------------------------------------------------


def envelope(**changes) -> dict:
    return {
        "studio_flow": 1,
        "name": "Imported",
        "slug": "imported",
        "description": "",
        "graph": assistant_graph(model="echo"),
        **changes,
    }


def test_a_file_naming_a_model_this_workspace_lacks_is_refused_naming_the_node(
    client, owner, workspace, echo_model
):
    client.force_login(owner)

    response = upload(client, "f.json", json.dumps(envelope(graph=assistant_graph(model="gpt-9"))))

    assertContains(
        response,
        "node &#x27;llm_1&#x27;: model &#x27;gpt-9&#x27; is not in this workspace&#x27;s catalog",
        status_code=400,
    )
    assertContains(response, "The file was not imported", status_code=400)
    assert not imported_flows(workspace).exists()


def test_every_problem_of_a_file_is_listed_at_once(client, owner, workspace, echo_model):
    graph = assistant_graph(model="echo")
    graph["nodes"][1]["type"] = "telepathy"
    client.force_login(owner)

    response = upload(client, "f.yaml", yaml.safe_dump(envelope(name="", extra="?", graph=graph)))

    errors = response.context["import_errors"]
    assert response.status_code == 400
    assert "name: String should have at least 1 character" in errors
    assert "extra: Extra inputs are not permitted" in errors
    assert "node 'llm_1': unknown node type 'telepathy'" in errors
    assert not imported_flows(workspace).exists()


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("f.json", "{nodes", "file: not valid JSON (line 1, column 2"),
        ("f.yaml", "a: [1, 2", "file: not valid YAML"),
        ("f.json", '["a list"]', "file: expected an object with studio_flow, name and graph"),
        ("f.json", json.dumps({"name": "x", "graph": {}}), "studio_flow: this is not a flow file"),
        ("f.json", b"\xff\xfe\x00bad", "file: this is not UTF-8 text"),
        ("f.yaml", "a: &x [1]\nb: *x\n", "file: YAML anchors and aliases"),
        ("f.yaml", "!!python/object/apply:os.system ['true']", "file: not valid YAML"),
    ],
)
def test_malformed_files_are_refused_with_the_reason(
    client, owner, workspace, name, content, error
):
    client.force_login(owner)

    response = upload(client, name, content)

    assert response.status_code == 400
    assert any(e.startswith(error) for e in response.context["import_errors"]), response.context[
        "import_errors"
    ]
    assert not imported_flows(workspace).exists()


def test_a_file_over_the_size_limit_is_refused_unread(client, owner, workspace):
    client.force_login(owner)

    response = upload(client, "big.json", b" " * (MAX_FILE_BYTES + 1))

    assertContains(response, "file: larger than 1024 KB", status_code=400)
    assert not imported_flows(workspace).exists()


def test_an_import_without_a_file_is_refused(client, owner, workspace):
    client.force_login(owner)

    response = client.post(reverse("flows:flow-import"))

    assertContains(response, "file: This field is required.", status_code=400)


# --- who may import ----------------------------------------------------------------------------


def test_viewer_cannot_import(client, viewer, workspace, echo_model):
    client.force_login(viewer)

    response = upload(client, "f.json", json.dumps(envelope()))

    assert response.status_code == 403
    assert not Flow.objects.exists()


def test_an_outsider_imports_into_their_own_workspace_only(client, outsider, workspace, echo_model):
    client.force_login(outsider)

    response = upload(client, "f.json", json.dumps(envelope()))

    assert response.status_code == 302
    flow = Flow.objects.get()
    assert flow.workspace != workspace
    assert flow.workspace.slug == "other"


def test_import_refuses_get(client, owner):
    client.force_login(owner)

    assert client.get(reverse("flows:flow-import")).status_code == 405


# --- duplicate ---------------------------------------------------------------------------------


def duplicate(client, flow):
    return client.post(reverse("flows:flow-duplicate", args=[flow.slug]))


def test_duplicating_copies_the_latest_version_without_a_draft(client, owner, workspace, flow):
    client.force_login(owner)

    response = duplicate(client, flow)

    copy = Flow.objects.get(workspace=workspace, slug="assistant-copy")
    assert response.status_code == 302
    assert copy.name == "Assistant (copy)"
    [version] = copy.versions.all()
    assert version.number == 1
    assert version.graph == flow.versions.get(number=2).graph
    assert version.note == "Copied from Assistant (v2)"
    assert copy.draft == version.graph
    assert copy.published_version is None
    assert AuditEvent.objects.filter(action="flow.duplicate", target_id=str(copy.id)).exists()


def test_duplicating_copies_the_draft_when_there_is_one(client, owner, workspace, flow):
    flow.draft = assistant_graph(model="echo", max_tokens=5)
    flow.save()
    client.force_login(owner)

    duplicate(client, flow)
    duplicate(client, flow)

    copies = Flow.objects.filter(workspace=workspace, name="Assistant (copy)").order_by("slug")
    assert [c.slug for c in copies] == ["assistant-copy", "assistant-copy-2"]
    for copy in copies:
        assert copy.versions.get().graph == flow.draft
        assert copy.versions.get().note == "Copied from Assistant (draft)"
    flow.refresh_from_db()
    assert flow.published_version.number == 1  # the original is untouched


def test_a_draft_that_does_not_pass_the_checks_is_not_copied(client, owner, workspace, flow):
    flow.draft = {"nodes": [], "edges": []}
    flow.save()
    client.force_login(owner)

    response = duplicate(client, flow)

    assertRedirects(
        response, reverse("flows:flow-detail", args=[flow.slug]), fetch_redirect_response=False
    )
    assert Flow.objects.filter(workspace=workspace).count() == 1
    page = client.get(reverse("flows:flow-detail", args=[flow.slug]))
    assertContains(page, "The flow could not be copied: graph: it needs an input node")


def test_viewer_cannot_duplicate(client, viewer, workspace, flow):
    client.force_login(viewer)

    assert duplicate(client, flow).status_code == 403
    assert Flow.objects.filter(workspace=workspace).count() == 1


def test_a_limited_editor_duplicates_a_shared_flow_and_manages_the_copy(
    client, make_member, workspace, flow, owner
):
    from studio import access
    from workspaces.sharing import object_grant

    editor = make_member("editor", limited=True)
    object_grant(obj=flow, subject=editor, level="view", actor=owner)
    client.force_login(editor)

    response = duplicate(client, flow)

    assert response.status_code == 302
    copy = Flow.objects.get(workspace=workspace, slug="assistant-copy")
    assert access.has_perm(editor, copy, "change")


def test_outsider_cannot_duplicate(client, outsider, flow):
    client.force_login(outsider)

    assert duplicate(client, flow).status_code == 404
    assert Flow.objects.count() == 1


def test_duplicate_refuses_get(client, owner, flow):
    client.force_login(owner)

    assert client.get(reverse("flows:flow-duplicate", args=[flow.slug])).status_code == 405
    assert Flow.objects.count() == 1


def test_the_flow_page_links_history_export_and_duplicate(client, owner, viewer, flow):
    client.force_login(owner)
    page = client.get(reverse("flows:flow-detail", args=[flow.slug]))
    assertContains(page, reverse("flows:flow-history", args=[flow.slug]))
    assertContains(page, reverse("flows:flow-export", args=[flow.slug]))
    assertContains(page, reverse("flows:flow-duplicate", args=[flow.slug]))

    client.force_login(viewer)
    page = client.get(reverse("flows:flow-detail", args=[flow.slug]))
    assertContains(page, reverse("flows:flow-export", args=[flow.slug]))
    assert reverse("flows:flow-duplicate", args=[flow.slug]) not in page.content.decode()
