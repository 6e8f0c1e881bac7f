"""The audit log says what changed, from what to what, in a line per field: never a dict or
a whole flow graph."""

from __future__ import annotations

import pytest
from django.urls import reverse

from catalog.services import model_create, model_update
from flows.demo import assistant_graph
from flows.services import flow_create, flow_version_save
from workspaces.audit_changes import audit_changes
from workspaces.models import Membership
from workspaces.services import member_change


def _graph(nodes: int) -> dict:
    return {"nodes": [{"id": f"n{i}", "type": "llm"} for i in range(nodes)], "edges": []}


@pytest.mark.parametrize(
    ("before", "after", "lines"),
    [
        ({"top_k": 5, "name": "kb"}, {"top_k": 8, "name": "kb"}, ["top_k: 5 → 8"]),
        (
            {"role": "viewer", "limited": False},
            {"role": "editor", "limited": True},
            ["role: viewer → editor", "limited: no → yes"],
        ),
        ({"graph": _graph(3)}, {"graph": _graph(4)}, ["graph changed (3 nodes → 4 nodes)"]),
        ({"graph": _graph(3)}, {"graph": {**_graph(3), "edges": [1]}}, ["graph changed"]),
        ({"system": "a" * 300}, {"system": "b"}, ["system changed (300 characters → b)"]),
        ({"revoked_at": None}, {"revoked_at": "2026-01-02"}, ["revoked_at: – → 2026-01-02"]),
        (None, {"slug": "triage", "tags": ["a", "b"], "note": ""}, ["slug: triage", "tags: a, b"]),
        ({"slug": "old"}, None, ["slug: old"]),
        (None, None, []),
        ({"same": 1}, {"same": 1}, []),
    ],
)
def test_a_change_reads_as_field_from_to(before, after, lines):
    assert audit_changes(before, after) == lines


def test_many_changed_fields_are_cut_short():
    lines = audit_changes({f"f{i}": 0 for i in range(20)}, {f"f{i}": 1 for i in range(20)})
    assert lines[-1] == "and 8 more" and len(lines) == 13


@pytest.mark.django_db
def test_the_audit_page_shows_changes_not_dicts_or_graphs(client, owner, workspace, make_member):
    model = model_create(slug="echo", name="Echo", engine="echo", workspace=workspace, actor=owner)
    model_update(model=model, context_length=4096, actor=owner)
    editor = make_member("viewer", username="vera")
    member_change(
        membership=Membership.objects.get(user=editor), role="editor", limited=False, actor=owner
    )
    flow = flow_create(
        workspace=workspace, slug="f", name="F", graph=assistant_graph("echo"), user=owner
    )
    flow_version_save(flow=flow, graph=assistant_graph("echo", max_tokens=9), user=owner)

    client.force_login(owner)
    response = client.get(reverse("workspaces:audit-list"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "context_length: 2048 → 4096" in body
    assert "role: viewer → editor" in body
    nodes = len(assistant_graph("echo")["nodes"])
    assert f"graph: – → {nodes} nodes" in body
    # Neither a Python dict nor the graph's JSON reaches the page.
    assert "{&#x27;" not in body and "&quot;nodes&quot;" not in body and "'nodes'" not in body
