"""The prompt library: versions are drafts until published and immutable afterwards, approval
needs a published version, flows resolve the latest approved or a pinned version, diffs escape
the prompt's text, every change is audited, and the pages obey roles, grants and workspaces."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from catalog.models import Prompt, PromptStatus, PromptVersion
from catalog.selectors.prompts import (
    ADDED,
    REMOVED,
    SAME,
    SECTION,
    aprompt_version_resolve,
    prompt_diff,
    prompt_version_resolve,
)
from catalog.services.prompts import (
    prompt_create,
    prompt_delete,
    prompt_version_approve,
    prompt_version_create,
    prompt_version_publish,
    prompt_version_update,
)
from workspaces.models import AuditEvent
from workspaces.services import workspace_create
from workspaces.sharing import object_grant

SCRIPT = "<script>alert('pwned')</script>"


@pytest.fixture
def editor(make_member):
    return make_member("editor", username="edith")


@pytest.fixture
def operator(make_member):
    return make_member("operator", username="otto")


@pytest.fixture
def admin(make_member):
    return make_member("admin", username="ada")


@pytest.fixture
def prompt(workspace, editor) -> Prompt:
    return prompt_create(
        workspace=workspace,
        slug="support-reply",
        name="Support reply",
        system="You answer for {{ company }}.",
        template="Customer: {{question}}\nTone: {{ tone }}\nAnswer for {{company}}.",
        actor=editor,
    )


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _version(prompt: Prompt, number: int) -> PromptVersion:
    return prompt.versions.get(number=number)


def _published(prompt: Prompt, template: str, actor, approve_by=None) -> PromptVersion:
    version = prompt_version_create(prompt=prompt, system="", template=template, actor=actor)
    version = prompt_version_publish(version=version, actor=actor)
    return prompt_version_approve(version=version, actor=approve_by) if approve_by else version


# --- services -------------------------------------------------------------------------------


def test_a_new_prompt_has_a_draft_version_one_with_its_variables(prompt, editor):
    version = _version(prompt, 1)
    assert version.status == PromptStatus.DRAFT and version.published_at is None
    assert version.created_by == editor
    # System first, then template; each name once, in order of first appearance.
    assert version.variables == ["company", "question", "tone"]


def test_the_catalog_finds_variables_exactly_as_flows_fill_them():
    # catalog/prompt_text.py duplicates the pattern (the catalog may not import flows).
    from catalog import prompt_text
    from flows.runtime import templating

    assert prompt_text.VARIABLE.pattern == templating.VARIABLE.pattern
    # ``{{c.d}}`` is a reference to node c's output d; ``{{c.d.e}}`` and ``{{ 1x }}`` are none.
    text = "{{a}} {{ b }} {{a}} {{ 1x }} {{c.d}} {{c.d.e}} {{_e9}}"
    assert prompt_text.variables(text) == templating.variables(text) == ["a", "b", "c.d", "_e9"]


def test_a_draft_can_change_and_its_variables_follow(prompt, editor):
    version = prompt_version_update(
        version=_version(prompt, 1),
        system="",
        template="Summarise {{ text }} in {{ words }} words.",
        note="shorter",
        actor=editor,
    )
    version.refresh_from_db()
    assert version.template == "Summarise {{ text }} in {{ words }} words."
    assert version.variables == ["text", "words"]
    assert version.note == "shorter"


def test_a_published_version_is_immutable(prompt, editor):
    version = prompt_version_publish(version=_version(prompt, 1), actor=editor)
    before = PromptVersion.objects.filter(id=version.id).values().get()
    with pytest.raises(ValidationError, match="published and can no longer change"):
        prompt_version_update(version=version, system="", template="Hijacked", actor=editor)
    assert PromptVersion.objects.filter(id=version.id).values().get() == before
    assert not AuditEvent.objects.filter(action="prompt.version.change").exists()
    with pytest.raises(ValidationError, match="already published"):
        prompt_version_publish(version=version, actor=editor)


def test_a_new_version_takes_the_next_number_and_copies_nothing(prompt, editor):
    version = prompt_version_create(
        prompt=prompt, system="", template="Hello {{ name }}", note="greeting", actor=editor
    )
    assert version.number == 2
    assert (version.system, version.variables, version.status) == ("", ["name"], "draft")
    assert _version(prompt, 1).template.startswith("Customer:")  # the first is untouched


def test_an_empty_template_is_refused(workspace, editor):
    with pytest.raises(ValidationError) as caught:
        prompt_create(workspace=workspace, slug="blank", name="Blank", template="  ", actor=editor)
    assert "template" in caught.value.message_dict
    assert not Prompt.objects.filter(slug="blank").exists()


def test_approving_needs_a_published_version(prompt, admin):
    version = _version(prompt, 1)
    with pytest.raises(ValidationError, match="publish it before approving"):
        prompt_version_approve(version=version, actor=admin)
    version.refresh_from_db()
    assert (version.status, version.approved_by, version.approved_at) == ("draft", None, None)

    version = prompt_version_publish(version=version, actor=admin)
    version = prompt_version_approve(version=version, actor=admin)
    version.refresh_from_db()
    assert version.status == PromptStatus.APPROVED
    assert version.approved_by == admin and version.approved_at is not None


def test_flows_resolve_the_latest_approved_version_or_a_published_pinned_one(
    workspace, prompt, editor, admin
):
    prompt_version_publish(version=_version(prompt, 1), actor=editor)
    assert prompt_version_resolve(workspace.id, "support-reply", None) is None  # none approved

    v1 = prompt_version_approve(version=_version(prompt, 1), actor=admin)
    v2 = _published(prompt, "second", editor)  # published, not approved
    v3 = prompt_version_create(prompt=prompt, system="", template="draft", actor=editor)

    latest = prompt_version_resolve(workspace.id, "support-reply", None)
    assert latest == v1 and latest.prompt == prompt  # the prompt comes with it
    assert prompt_version_resolve(workspace.id, "support-reply", 2) == v2
    assert prompt_version_resolve(workspace.id, "support-reply", v3.number) is None  # a draft
    assert prompt_version_resolve(workspace.id, "support-reply", 99) is None
    assert prompt_version_resolve(workspace.id, "no-such-prompt", None) is None

    prompt_version_approve(version=v2, actor=admin)
    assert prompt_version_resolve(workspace.id, "support-reply", None) == v2
    assert prompt_version_resolve(workspace.id, "support-reply", 1) == v1  # pinned stays

    # The async twin answers the same.
    resolve = async_to_sync(aprompt_version_resolve)
    assert resolve(workspace.id, "support-reply", None) == v2
    assert resolve(workspace.id, "support-reply", 1) == v1
    assert resolve(workspace.id, "support-reply", 3) is None


def test_another_workspaces_prompt_of_the_same_slug_never_resolves(prompt, editor, admin):
    prompt_version_approve(
        version=prompt_version_publish(version=_version(prompt, 1), actor=editor), actor=admin
    )
    other = workspace_create(slug="other-ws", name="Other")
    assert prompt_version_resolve(other.id, "support-reply", None) is None
    assert prompt_version_resolve(other.id, "support-reply", 1) is None


def test_the_diff_lists_added_removed_and_unchanged_lines(prompt, editor):
    old = PromptVersion(system="", template="line one\nline two\nline three")
    new = PromptVersion(system="Be brief.", template="line one\nline 2\nline three\nline four")
    rows = prompt_diff(old, new)
    assert rows == [
        (SECTION, "System"),
        (ADDED, "Be brief."),
        (SECTION, "Template"),
        (SAME, "line one"),
        (REMOVED, "line two"),
        (ADDED, "line 2"),
        (SAME, "line three"),
        (ADDED, "line four"),
    ]
    # Without any system text, there is no System section.
    assert prompt_diff(old, old)[0] == (SECTION, "Template")


def test_every_change_is_audited_with_its_actor_and_before_and_after(prompt, editor, admin):
    v1 = _version(prompt, 1)
    prompt_version_update(version=v1, system="", template="Edited {{ x }}", actor=editor)
    prompt_version_publish(version=v1, actor=editor)
    prompt_version_approve(version=v1, actor=admin)
    prompt_version_create(prompt=prompt, system="", template="Next", actor=editor)
    prompt_delete(prompt=prompt, actor=admin)

    events = list(AuditEvent.objects.filter(action__startswith="prompt.").order_by("id"))
    assert [(e.action, e.actor) for e in events] == [
        ("prompt.create", editor),
        ("prompt.version.create", editor),
        ("prompt.version.change", editor),
        ("prompt.version.publish", editor),
        ("prompt.version.approve", admin),
        ("prompt.version.create", editor),
        ("prompt.delete", admin),
    ]
    create, _, change, publish, approve, _, delete = events
    assert create.after["slug"] == "support-reply"
    assert change.before["template"].startswith("Customer:")
    assert change.after["template"] == "Edited {{ x }}"
    assert (change.before["variables"], change.after["variables"]) == (
        ["company", "question", "tone"],
        ["x"],
    )
    assert publish.before["published_at"] is None and publish.after["published_at"]
    assert (approve.before["status"], approve.after["status"]) == ("draft", "approved")
    assert approve.after["approved_by"] == admin.id
    assert delete.before["slug"] == "support-reply" and len(delete.before["versions"]) == 2
    assert change.target_label == "support-reply v1"


# --- pages: roles ---------------------------------------------------------------------------

CREATE = {"name": "Triage", "slug": "triage", "system": "", "template": "Sort {{ ticket }}"}


def test_an_editor_creates_a_prompt_from_the_page(workspace, editor):
    response = _client(editor).post(reverse("catalog:prompt-create"), CREATE)
    prompt = Prompt.objects.get(workspace=workspace, slug="triage")
    assert response.status_code == 302
    assert response["Location"] == reverse("catalog:prompt-detail", args=[prompt.id])
    version = prompt.versions.get()
    assert (version.number, version.status, version.variables) == (1, "draft", ["ticket"])


def test_a_viewer_cannot_create_a_prompt(viewer):
    client = _client(viewer)
    assert client.get(reverse("catalog:prompt-create")).status_code == 403
    assert client.post(reverse("catalog:prompt-create"), CREATE).status_code == 403
    assert not Prompt.objects.exists()
    assert "New prompt" not in client.get(reverse("catalog:prompt-list")).content.decode()


def test_a_bad_create_form_answers_400_with_the_reasons(editor, prompt):
    client = _client(editor)
    response = client.post(reverse("catalog:prompt-create"), {})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    response = client.post(reverse("catalog:prompt-create"), {**CREATE, "slug": "support-reply"})
    assert response.status_code == 400
    assert "already has a prompt" in response.content.decode()
    assert Prompt.objects.count() == 1


@pytest.mark.parametrize("role, allowed", [("operator", False), ("editor", False), ("admin", True)])
def test_only_admins_approve(make_member, prompt, role, allowed):
    version = prompt_version_publish(version=_version(prompt, 1), actor=None)
    user = make_member(role, username=f"approver-{role}")
    client = _client(user)
    page = client.get(reverse("catalog:prompt-detail", args=[prompt.id])).content.decode()
    assert ("Approve</button>" in page) is allowed
    response = client.post(reverse("catalog:prompt-version-approve", args=[version.id]))
    version.refresh_from_db()
    if allowed:
        assert response.status_code == 302
        assert (version.status, version.approved_by) == ("approved", user)
    else:
        assert response.status_code == 403
        assert (version.status, version.approved_by) == ("draft", None)


def test_an_operator_cannot_publish_or_write_versions(operator, prompt):
    client = _client(operator)
    version = _version(prompt, 1)
    assert (
        client.post(reverse("catalog:prompt-version-publish", args=[version.id])).status_code == 403
    )
    assert client.get(reverse("catalog:prompt-version-edit", args=[version.id])).status_code == 403
    response = client.post(
        reverse("catalog:prompt-version-create", args=[prompt.id]), {"template": "mine"}
    )
    assert response.status_code == 403
    assert client.post(reverse("catalog:prompt-delete", args=[prompt.id])).status_code == 403
    version.refresh_from_db()
    assert version.published_at is None and prompt.versions.count() == 1


def test_an_editor_writes_edits_and_publishes_a_version(editor, prompt):
    client = _client(editor)
    response = client.post(
        reverse("catalog:prompt-version-create", args=[prompt.id]),
        {"system": "", "template": "v2 {{ q }}", "note": "simpler"},
    )
    assert response.status_code == 302
    v2 = _version(prompt, 2)
    assert response["Location"].endswith("?version=2")
    response = client.post(
        reverse("catalog:prompt-version-edit", args=[v2.id]), {"template": "v2 again {{ q }}"}
    )
    assert response.status_code == 302
    assert client.post(reverse("catalog:prompt-version-publish", args=[v2.id])).status_code == 302
    v2.refresh_from_db()
    assert v2.template == "v2 again {{ q }}" and v2.published_at is not None


def test_editing_a_published_version_answers_409_and_changes_nothing(editor, prompt):
    version = prompt_version_publish(version=_version(prompt, 1), actor=editor)
    before = PromptVersion.objects.filter(id=version.id).values().get()
    client = _client(editor)
    url = reverse("catalog:prompt-version-edit", args=[version.id])
    response = client.get(url)
    assert response.status_code == 409
    assert "is published and can no longer change" in response.content.decode()
    assert client.post(url, {"template": "Hijacked"}).status_code == 409
    assert PromptVersion.objects.filter(id=version.id).values().get() == before


def test_an_editor_deletes_a_prompt(editor, prompt):
    response = _client(editor).post(reverse("catalog:prompt-delete", args=[prompt.id]))
    assert response.status_code == 302 and response["Location"] == reverse("catalog:prompt-list")
    assert not Prompt.objects.filter(id=prompt.id).exists()
    assert not PromptVersion.objects.filter(prompt_id=prompt.id).exists()


# --- pages: workspaces and limited members --------------------------------------------------


def test_another_workspaces_member_gets_404_everywhere(outsider, prompt):
    client = _client(outsider)
    version = _version(prompt, 1)
    for url in (
        reverse("catalog:prompt-detail", args=[prompt.id]),
        reverse("catalog:prompt-diff", args=[prompt.id]),
        reverse("catalog:prompt-version-create", args=[prompt.id]),
        reverse("catalog:prompt-version-edit", args=[version.id]),
    ):
        assert client.get(url).status_code == 404, url
    for url in (
        reverse("catalog:prompt-version-publish", args=[version.id]),
        reverse("catalog:prompt-version-approve", args=[version.id]),
        reverse("catalog:prompt-delete", args=[prompt.id]),
        reverse("catalog:prompt-version-edit", args=[version.id]),
    ):
        assert client.post(url, {"template": "x"}).status_code == 404, url
    assert "Support reply" not in client.get(reverse("catalog:prompt-list")).content.decode()
    version.refresh_from_db()
    assert version.published_at is None and Prompt.objects.filter(id=prompt.id).exists()


def test_a_limited_member_sees_only_the_prompts_shared_with_them(
    workspace, make_member, prompt, owner
):
    hidden = prompt_create(
        workspace=workspace, slug="hidden", name="Hidden prompt", template="x", actor=owner
    )
    limited = make_member("operator", username="lim", limited=True)
    object_grant(obj=prompt, subject=limited, level="use", actor=owner)
    client = _client(limited)
    page = client.get(reverse("catalog:prompt-list")).content.decode()
    assert "Support reply" in page and "Hidden prompt" not in page
    assert client.get(reverse("catalog:prompt-detail", args=[prompt.id])).status_code == 200
    assert client.get(reverse("catalog:prompt-detail", args=[hidden.id])).status_code == 404
    assert client.get(reverse("catalog:prompt-diff", args=[hidden.id])).status_code == 404


def test_a_limited_editor_manages_the_prompt_they_create(workspace, make_member, prompt):
    limited = make_member("editor", username="lee", limited=True)
    client = _client(limited)
    assert client.get(reverse("catalog:prompt-detail", args=[prompt.id])).status_code == 404
    assert client.post(reverse("catalog:prompt-create"), CREATE).status_code == 302
    page = client.get(reverse("catalog:prompt-list")).content.decode()
    assert "Triage" in page and "Support reply" not in page
    own = Prompt.objects.get(slug="triage")
    detail = client.get(reverse("catalog:prompt-detail", args=[own.id])).content.decode()
    assert reverse("workspaces:share", args=["prompt", own.id]) in detail  # manage includes share


# --- pages: methods, diff, rendering --------------------------------------------------------


def test_wrong_methods_answer_405(editor, prompt):
    client = _client(editor)
    version = _version(prompt, 1)
    for name, arg in (
        ("catalog:prompt-version-publish", version.id),
        ("catalog:prompt-version-approve", version.id),
        ("catalog:prompt-delete", prompt.id),
    ):
        assert client.get(reverse(name, args=[arg])).status_code == 405, name
    for name, args in (("catalog:prompt-list", []), ("catalog:prompt-detail", [prompt.id])):
        assert client.post(reverse(name, args=args)).status_code == 405, name
    assert client.post(reverse("catalog:prompt-diff", args=[prompt.id])).status_code == 405
    version.refresh_from_db()
    assert version.published_at is None


def test_the_diff_page_shows_changes_and_escapes_the_prompt_text(editor, prompt):
    v2 = prompt_version_create(
        prompt=prompt, system="", template=f"Customer: {{{{question}}}}\n{SCRIPT}", actor=editor
    )
    client = _client(editor)
    response = client.get(reverse("catalog:prompt-diff", args=[prompt.id]), {"a": 1, "b": 2})
    page = response.content.decode()
    assert response.status_code == 200
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page
    assert 'class="diff-added"' in page and 'class="diff-removed"' in page
    assert "<del>Tone: {{ tone }}</del>" in page
    # The detail page shows the text escaped too.
    detail = client.get(reverse("catalog:prompt-detail", args=[prompt.id]), {"version": v2.number})
    assert SCRIPT not in detail.content.decode()
    assert "&lt;script&gt;" in detail.content.decode()


def test_the_diff_defaults_to_the_latest_against_the_one_before(editor, prompt):
    prompt_version_create(prompt=prompt, system="", template="Only this", actor=editor)
    response = _client(editor).get(reverse("catalog:prompt-diff", args=[prompt.id]))
    assert response.status_code == 200
    assert response.context["a"].number == 1 and response.context["b"].number == 2


@pytest.mark.parametrize(
    "query", [{"a": "abc", "b": "1"}, {"a": "1", "b": "99"}, {"a": "-1"}, {"b": "1.5"}]
)
def test_bad_diff_numbers_answer_404_with_the_reason(editor, prompt, query):
    response = _client(editor).get(reverse("catalog:prompt-diff", args=[prompt.id]), query)
    assert response.status_code == 404
    assert 'class="alert error"' in response.content.decode()


def test_an_unknown_version_on_the_detail_page_is_404(editor, prompt):
    client = _client(editor)
    url = reverse("catalog:prompt-detail", args=[prompt.id])
    assert client.get(url, {"version": "7"}).status_code == 404
    assert client.get(url, {"version": "x"}).status_code == 404


def test_the_detail_page_shows_versions_variables_and_how_to_use_it_in_a_flow(
    editor, admin, prompt
):
    client = _client(editor)
    url = reverse("catalog:prompt-detail", args=[prompt.id])
    page = client.get(url).content.decode()
    assert "draft" in page and "edith" in page
    assert "<code>company</code><code>question</code><code>tone</code>" in page
    assert "Use in a flow" in page and "library_prompt" not in page  # nothing usable yet
    assert reverse("catalog:prompt-version-edit", args=[_version(prompt, 1).id]) in page

    prompt_version_approve(
        version=prompt_version_publish(version=_version(prompt, 1), actor=editor), actor=admin
    )
    page = client.get(url).content.decode()
    assert "&quot;library_prompt&quot;: &quot;support-reply&quot;" in page
    assert "&quot;library_version&quot;: null" in page  # follow the latest approved
    assert "&quot;library_version&quot;: 1" in page  # or pin this version
    assert reverse("catalog:prompt-version-edit", args=[_version(prompt, 1).id]) not in page
    assert "approved" in page and "ada" in page


def test_an_htmx_request_gets_only_the_body_of_the_detail_page(editor, prompt):
    prompt_version_create(prompt=prompt, system="", template="two", actor=editor)
    response = _client(editor).get(
        reverse("catalog:prompt-detail", args=[prompt.id]),
        {"version": 1},
        headers={"HX-Request": "true", "HX-Target": "prompt-body"},
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page and "Version 1" in page and 'id="versions"' in page
