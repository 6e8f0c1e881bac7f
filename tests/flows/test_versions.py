"""A flow's history: the numbered versions, what changed between two of them, and rolling back
(publish an earlier version again, or restore it into the draft)."""

from __future__ import annotations

import copy

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from flows.demo import assistant_graph
from flows.editor.graph_diff import graph_diff
from flows.models import FlowVersion, RunSource, VersionKind
from flows.services import flow_version_save
from flows.services.versions import flow_version_republish, flow_version_restore
from workspaces.models import AuditEvent


def edited(graph: dict) -> dict:
    """``graph`` with the LLM's prompt and temperature changed, its max_tokens removed, a
    node moved, and a second output field fed by the input."""
    graph = copy.deepcopy(graph)
    llm = next(n for n in graph["nodes"] if n["id"] == "llm_1")
    llm["config"]["prompt"] = "Answer in French: {{message}}"
    llm["config"]["temperature"] = 0.5
    del llm["config"]["max_tokens"]
    graph["nodes"][0]["position"] = {"x": 999, "y": 999}
    graph["nodes"].append(
        {
            "id": "echo_out",
            "type": "output",
            "position": {"x": 0, "y": 300},
            "config": {"fields": [{"name": "copy", "type": "text", "label": "Copy"}]},
        }
    )
    graph["edges"].append(
        {
            "id": "e9",
            "source": "input_1",
            "source_port": "message",
            "target": "echo_out",
            "target_port": "copy",
        }
    )
    return graph


@pytest.fixture
def flow(make_flow, echo_model, owner):
    """Published v1, then v2 saved (not published), and an editor's draft snapshot."""
    flow = make_flow(echo_model)
    version = flow_version_save(flow=flow, graph=edited(flow.versions.get().graph), user=owner)
    FlowVersion.objects.filter(id=version.id).update(note="French answers")
    FlowVersion.objects.create(
        flow=flow, kind=VersionKind.DRAFT, number=None, graph=assistant_graph(model="echo")
    )
    flow.refresh_from_db()
    return flow


def history(flow) -> str:
    return reverse("flows:flow-history", args=[flow.slug])


# --- the diff ----------------------------------------------------------------------------------


def test_the_diff_names_nodes_added_and_config_keys_changed_but_not_positions():
    before = assistant_graph(model="echo", max_tokens=64)

    diff = graph_diff(before, edited(before), labels=("v1", "v2"))

    assert diff.added == [{"id": "echo_out", "type": "output"}]
    assert diff.removed == []
    [llm] = diff.changed  # input_1 only moved: not a change
    assert llm.id == "llm_1"
    assert [(c.key, c.before, c.after) for c in llm.changes] == [
        ("config.max_tokens", "64", None),
        ("config.prompt", "{{message}}", "Answer in French: {{message}}"),
        ("config.temperature", "0", "0.5"),
    ]
    assert diff.edges_added == ["input_1.message → echo_out.copy"]
    assert diff.edges_removed == []
    assert diff.lines[0].text == "--- v1" and diff.lines[1].text == "+++ v2"
    assert ("added", '        "prompt": "Answer in French: {{message}}",') in [
        (line.op, line.text) for line in diff.lines
    ]


def test_the_diff_of_a_graph_with_itself_moved_is_empty_of_changes():
    before = assistant_graph(model="echo")
    moved = copy.deepcopy(before)
    moved["nodes"][1]["position"]["x"] += 40

    diff = graph_diff(before, moved, labels=("v1", "draft"))

    assert diff.same
    assert any(line.op == "added" for line in diff.lines)  # the JSON still shows the move


def test_spelled_out_defaults_are_no_change_and_policy_keys_are_compared_one_by_one():
    before = assistant_graph(model="echo")
    after = copy.deepcopy(before)
    for node in after["nodes"]:  # as the editor saves nodes: every key spelled out
        node.update(title="", parent=None, policy={"retries": 0, "on_error": "fail"})
    unchanged = graph_diff(before, after, labels=("v1", "draft"))
    assert unchanged.same
    assert unchanged.lines == []  # the JSON is compared with the defaults filled in too

    after["nodes"][1]["policy"]["retries"] = 2
    after["nodes"][1]["title"] = "Answer"

    [llm] = graph_diff(before, after, labels=("v1", "draft")).changed
    assert [(c.key, c.before, c.after) for c in llm.changes] == [
        ("policy.retries", "0", "2"),
        ("title", "", "Answer"),
    ]


def test_removed_nodes_and_edges_are_listed():
    before = edited(assistant_graph(model="echo"))

    diff = graph_diff(before, assistant_graph(model="echo"), labels=("v2", "v1"))

    assert diff.removed == [{"id": "echo_out", "type": "output"}]
    assert diff.edges_removed == ["input_1.message → echo_out.copy"]


# --- the history page --------------------------------------------------------------------------


def test_history_lists_numbered_versions_with_who_when_note_and_which_is_published(
    client, owner, flow
):
    client.force_login(owner)

    response = client.get(history(flow))

    assert response.status_code == 200
    assert [row.version.number for row in response.context["rows"]] == [2, 1]  # no snapshot
    assertContains(response, "v2")
    assertContains(response, "French answers")
    assertContains(response, "olive", count=3)  # the top bar, and who saved each version
    assertContains(response, '<span class="badge ok">published</span>', count=1)
    assertContains(response, reverse("flows:flow-version-republish", args=[flow.slug, 2]))
    assertNotContains(response, reverse("flows:flow-version-republish", args=[flow.slug, 1]))
    assertContains(response, reverse("flows:flow-version-restore", args=[flow.slug, 1]))
    assertContains(response, "Changes since v1")


def test_comparing_two_versions_shows_what_changed(client, owner, flow):
    client.force_login(owner)

    response = client.get(history(flow), {"a": "1", "b": "2"})

    assert response.status_code == 200
    assertContains(response, "v1 → v2")
    assertContains(response, "1 node added")
    assertContains(response, "<code>echo_out</code> (output)", html=False)
    assertContains(response, "<code>config.prompt</code>", html=False)
    assertContains(response, "Answer in French: {{message}}")
    assertContains(response, "input_1.message → echo_out.copy")
    assertContains(response, "Changes to the graph JSON")
    assertNotContains(response, "<code>position</code>", html=False)


def test_an_htmx_comparison_gets_only_the_panel(client, owner, flow):
    client.force_login(owner)

    response = client.get(
        history(flow),
        {"a": "2", "b": "1"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="compare-panel",
    )

    assertContains(response, "v2 → v1")
    assertContains(response, "1 node removed")
    assertNotContains(response, "<html")


def test_draft_vs_published(client, owner, flow):
    flow.draft = edited(flow.published_version.graph)
    flow.draft["nodes"][1]["config"]["system"] = "Be terse."
    flow.save()
    client.force_login(owner)

    response = client.get(history(flow), {"a": "published", "b": "draft"})

    assertContains(response, "v1 (published) → draft")
    assertContains(response, "Be terse.")
    assertContains(response, "Draft vs published")


def test_comparing_with_a_missing_draft_or_version_says_so(client, owner, flow):
    client.force_login(owner)

    no_draft = client.get(history(flow), {"a": "published", "b": "draft"})
    no_version = client.get(history(flow), {"a": "1", "b": "7"})
    not_a_version = client.get(history(flow), {"a": "1", "b": "latest"})

    assertContains(no_draft, "This flow has no draft.", status_code=404)
    assertContains(no_version, "Assistant has no version 7.", status_code=404)
    assertContains(not_a_version, "is not a version", status_code=400)


# --- rolling back ------------------------------------------------------------------------------


def test_publishing_an_earlier_version_again_serves_it_and_is_audited(client, owner, flow):
    v1, v2 = flow.versions.get(number=1), flow.versions.get(number=2)
    flow_version_republish(flow=flow, version=v2, user=owner)
    client.force_login(owner)

    response = client.post(reverse("flows:flow-version-republish", args=[flow.slug, 1]))

    assertRedirects(response, history(flow), fetch_redirect_response=False)
    flow.refresh_from_db()
    assert flow.published_version == v1
    assert flow.versions.filter(kind=VersionKind.VERSION).count() == 2  # nothing new saved
    event = AuditEvent.objects.filter(action="flow.publish").latest("id")
    assert (event.before, event.after) == ({"published_version": 2}, {"published_version": 1})
    assert event.actor == owner
    assertContains(client.get(history(flow)), "Version 1 is published again.")


def test_restoring_a_version_into_the_draft_keeps_serving_the_published_one(client, owner, flow):
    flow.draft = {"nodes": [], "edges": []}  # work in progress, possibly invalid
    flow.save()
    client.force_login(owner)

    response = client.post(reverse("flows:flow-version-restore", args=[flow.slug, 2]))

    assertRedirects(response, history(flow), fetch_redirect_response=False)
    flow.refresh_from_db()
    assert flow.draft == flow.versions.get(number=2).graph
    assert flow.draft_saved_by == owner
    assert flow.published_version.number == 1
    event = AuditEvent.objects.get(action="flow.draft_restore")
    assert event.before == {"draft": {"nodes": [], "edges": []}}
    assert event.after == {"restored_version": 2}
    # The chat page still runs the published version, not the draft.
    sent = client.post(reverse("conversations:chat-send", args=[flow.slug]), {"message": "hi"})
    assert sent.status_code == 200
    run = flow.runs.get()
    assert run.flow_version.number == 1
    assert run.source == RunSource.CHAT


def test_a_draft_snapshot_cannot_be_rolled_back_to(owner, flow):
    snapshot = flow.versions.get(kind=VersionKind.DRAFT)

    with pytest.raises(ValidationError):
        flow_version_restore(flow=flow, version=snapshot, user=owner)
    with pytest.raises(ValidationError):
        flow_version_republish(flow=flow, version=snapshot, user=owner)
    flow.refresh_from_db()
    assert flow.published_version.number == 1
    assert flow.draft is None


def test_rolling_back_to_a_version_that_does_not_exist_is_404(client, owner, flow):
    client.force_login(owner)

    assert (
        client.post(reverse("flows:flow-version-republish", args=[flow.slug, 9])).status_code == 404
    )
    assert (
        client.post(reverse("flows:flow-version-restore", args=[flow.slug, 9])).status_code == 404
    )


# --- who may ---------------------------------------------------------------------------------


def test_viewer_sees_the_history_but_cannot_roll_back(client, viewer, flow):
    client.force_login(viewer)

    page = client.get(history(flow), {"a": "1", "b": "2"})
    republished = client.post(reverse("flows:flow-version-republish", args=[flow.slug, 2]))
    restored = client.post(reverse("flows:flow-version-restore", args=[flow.slug, 2]))

    assertContains(page, "v1 → v2")
    assertNotContains(page, "Publish again")
    assertNotContains(page, "Restore into draft")
    assert republished.status_code == 403
    assert restored.status_code == 403
    flow.refresh_from_db()
    assert flow.published_version.number == 1
    assert flow.draft is None


def test_an_operator_may_run_but_not_roll_back(client, make_member, flow):
    client.force_login(make_member("operator"))

    assert (
        client.post(reverse("flows:flow-version-republish", args=[flow.slug, 2])).status_code == 403
    )
    assert (
        client.post(reverse("flows:flow-version-restore", args=[flow.slug, 2])).status_code == 403
    )
    flow.refresh_from_db()
    assert flow.published_version.number == 1


def test_outsider_gets_404_everywhere(client, outsider, flow):
    client.force_login(outsider)

    assert client.get(history(flow)).status_code == 404
    assert (
        client.post(reverse("flows:flow-version-republish", args=[flow.slug, 2])).status_code == 404
    )
    assert (
        client.post(reverse("flows:flow-version-restore", args=[flow.slug, 2])).status_code == 404
    )
    flow.refresh_from_db()
    assert flow.published_version.number == 1


def test_a_limited_member_without_a_grant_gets_404(client, make_member, flow):
    client.force_login(make_member("editor", limited=True))

    assert client.get(history(flow)).status_code == 404
    assert (
        client.post(reverse("flows:flow-version-restore", args=[flow.slug, 2])).status_code == 404
    )


def test_wrong_methods_are_refused(client, owner, flow):
    client.force_login(owner)

    assert client.post(history(flow)).status_code == 405
    assert (
        client.get(reverse("flows:flow-version-republish", args=[flow.slug, 2])).status_code == 405
    )
    assert client.get(reverse("flows:flow-version-restore", args=[flow.slug, 2])).status_code == 405
    flow.refresh_from_db()
    assert flow.published_version.number == 1
    assert flow.draft is None


def test_anonymous_users_are_sent_to_log_in(client, flow):
    url = history(flow)

    assertRedirects(
        client.get(url), f"{reverse('login')}?next={url}", fetch_redirect_response=False
    )
