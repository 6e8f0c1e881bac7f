"""One form style on every page, in a real browser: a checkbox or radio sits on the same line
as its label, just left of it; the inputs and dropdowns of a form share one width; a slug
follows the name as it is typed until it is edited by hand; the audit log reads as changes."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

# For each checkbox and radio: where it is and where its label's text is. A label that wraps
# its input is measured by the text after the input, not by its own box.
MEASURE = """(form) => {
  const visible = (el) => el.offsetParent !== null;
  const checks = [...form.querySelectorAll('input[type=checkbox], input[type=radio]')]
    .filter(visible)
    .map((input) => {
      const label = input.labels && input.labels[0];
      if (!label) return { name: input.name, label: null };
      let text = label.getBoundingClientRect();
      if (label.contains(input)) {
        const range = document.createRange();
        range.setStartAfter(input);
        range.setEndAfter(label.lastChild);
        text = range.getBoundingClientRect();
      }
      const box = input.getBoundingClientRect();
      return {
        name: input.name + '=' + input.value,
        label: label.textContent.trim(),
        rowGap: Math.abs((box.top + box.bottom) / 2 - (text.top + text.bottom) / 2),
        gap: text.left - box.right,
      };
    });
  const controls = [...form.querySelectorAll(
    'select, input:not([type=checkbox]):not([type=radio]):not([type=hidden])'
    + ':not([type=color]):not([type=file])')].filter(visible);
  const widths = controls.map((el) => Math.round(el.getBoundingClientRect().width));
  return { checks, widths, names: controls.map((el) => el.name) };
}"""


def _assert_one_style(page, form, *, min_checks: int = 0) -> None:
    found = form.evaluate(MEASURE)
    assert len(found["checks"]) >= min_checks, found
    for check in found["checks"]:
        assert check["label"], f"{check['name']} has no label"
        assert check["rowGap"] < 8, f"{check['label']!r} is not on its checkbox's line: {check}"
        assert 0 <= check["gap"] < 40, f"{check['label']!r} is not just right of it: {check}"
    assert len(found["widths"]) >= 2, found
    assert max(found["widths"]) - min(found["widths"]) <= 1, dict(
        zip(found["names"], found["widths"], strict=True)
    )


def test_form_pages_share_one_layout(
    page, owner, workspace, echo_model, make_flow, embedding_model
):
    flow = make_flow(echo_model)
    log_in(page, owner.username, PASSWORD)

    page.goto("/catalog/new")
    _assert_one_style(page, page.locator("form.model-form"))
    page.goto("/knowledge/new")
    _assert_one_style(page, page.locator("form.kb-form"), min_checks=1)
    page.goto(f"/flows/{flow.slug}/chat-settings/")
    _assert_one_style(page, page.locator("#embed-form"), min_checks=3)
    page.goto("/workspace/members/")
    invite = page.locator("form", has=page.get_by_role("button", name="Invite", exact=True))
    _assert_one_style(page, invite, min_checks=1)
    page.goto("/keys/")
    # Radios for "all or chosen", a checkbox per flow, and the dropdowns inside the fieldsets
    # as wide as the name above them.
    _assert_one_style(page, page.locator("form.key-form").first, min_checks=5)


def test_the_slug_follows_the_name_until_edited(page, owner, workspace):
    log_in(page, owner.username, PASSWORD)
    page.goto("/catalog/prompts/new")
    name, slug = page.locator("#id_name"), page.locator("#id_slug")
    name.press_sequentially("My Support Bot")
    expect(slug).to_have_value("my-support-bot")
    slug.fill("support")
    name.fill("Another name")
    expect(slug).to_have_value("support")


def test_the_audit_log_reads_as_changes(page, owner, workspace, make_member):
    from workspaces.models import Membership
    from workspaces.services import member_change

    member = make_member("viewer", username="vera")
    member_change(
        membership=Membership.objects.get(user=member), role="editor", limited=False, actor=owner
    )
    log_in(page, owner.username, PASSWORD)
    page.goto("/workspace/audit/")
    expect(
        page.locator("#audit ul.audit-changes li", has_text="role: viewer → editor")
    ).to_be_visible()
    expect(page.locator("#audit pre")).to_have_count(0)
