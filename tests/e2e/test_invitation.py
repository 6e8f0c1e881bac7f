"""An invitation link in a real browser: its token rides in the fragment, which the page's script
sends in a form's body, so the address bar and the server's request lines never show it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from workspaces.models import Membership
from workspaces.services import invitation_create
from workspaces.views.invitations import OPEN

pytestmark = pytest.mark.e2e


def test_a_newcomer_opens_the_link_and_creates_an_account(page, live_studio, workspace, owner):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    _, token = invitation_create(
        workspace=workspace,
        email="nina@example.com",
        role="viewer",
        actor=owner,
        accept_url=lambda t: t,
    )
    page.goto(f"/invitations/{OPEN}/#{token}")
    expect(page.get_by_role("heading", name="Join Acme")).to_be_visible()
    assert "#" not in page.url and token not in page.url
    page.get_by_label("Username").fill("nina")
    page.locator("input[name=password1]").fill(PASSWORD)
    page.locator("input[name=password2]").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{live_studio}/accounts/login/")

    nina = get_user_model().objects.get(username="nina")
    assert Membership.objects.get(workspace=workspace, user=nina).role == "viewer"
    assert not [url for url in requested if token in url.partition("#")[0]]
