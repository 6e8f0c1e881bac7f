"""API keys: shown once, stored hashed, made by `manage.py apikey create`."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from tests.workspaces.legacy_keys import mark_keys_legacy
from workspaces.access import authenticate_api_key
from workspaces.models import ApiKey, Workspace
from workspaces.services import api_key_create, api_key_revoke


def test_the_command_makes_a_key_for_the_demo_workspace_and_prints_only_it(db):
    from flows.demo import demo_seed

    demo_seed()
    out = io.StringIO()
    call_command("apikey", "create", stdout=out)
    key = out.getvalue().strip()
    assert key.startswith("sk-studio-") and "\n" not in key
    stored = ApiKey.objects.get()
    assert stored.workspace.slug == "demo"
    assert key.split(".", 1)[1] not in stored.secret_hash
    assert authenticate_api_key(f"Bearer {key}") == stored


def test_the_command_refuses_an_unknown_workspace(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no workspace 'nope'"):
        call_command("apikey", "create", "--workspace", "nope")


def test_keys_are_hashed_and_revocable(workspace):
    api_key, key = api_key_create(workspace=workspace, name="ci")
    assert key not in str(ApiKey.objects.filter(id=api_key.id).values().get())
    assert authenticate_api_key(f"Bearer {key}") == api_key
    assert authenticate_api_key(f"Bearer {key}x") is None
    assert authenticate_api_key(key) is None  # no "Bearer "
    api_key_revoke(api_key=api_key)
    assert authenticate_api_key(f"Bearer {key}") is None


def test_an_admin_makes_a_scoped_expiring_key_on_the_keys_page(
    client, workspace, owner, echo_model, make_flow
):
    from datetime import timedelta

    from django.utils import timezone

    from workspaces.models import AuditEvent

    alpha, _ = make_flow(echo_model, slug="alpha"), make_flow(echo_model, slug="beta")
    client.force_login(owner)
    page = client.get("/keys/")
    assert 'name="flows"' in page.text and "Beta" in page.text

    response = client.post(
        "/keys/create",
        {
            "name": "backend",
            "flow_access": "run",
            "flow_selection": "chosen",
            "flows": [alpha.id],
            "knowledge_access": "read",
            "knowledge_selection": "all",
            "expires_in": "30",
        },
    )

    assert response.status_code == 200
    row = ApiKey.objects.get(name="backend")
    assert (row.flow_access, row.flow_ids) == ("run", [alpha.id])
    assert (row.knowledge_access, row.knowledge_base_ids) == ("read", None)
    assert row.created_by == owner and not row.host_issued and not row.legacy
    expected = timezone.now() + timedelta(days=30)
    assert abs((row.expires_at - expected).total_seconds()) < 60
    created = AuditEvent.objects.get(action="key.create", target_id=str(row.id))
    assert created.after["flow_ids"] == [alpha.id]
    listing = client.get("/keys/").text
    assert "Run, and read its own runs: alpha" in listing
    assert row.expires_at.strftime("%Y-%m-%d") in listing


def test_a_key_posted_with_a_name_only_reaches_nothing(client, workspace, owner):
    client.force_login(owner)
    assert client.post("/keys/create", {"name": "bare"}).status_code == 200
    row = ApiKey.objects.get(name="bare")
    assert (row.flow_access, row.flow_ids) == ("none", [])
    assert (row.knowledge_access, row.knowledge_base_ids) == ("none", [])
    assert row.expires_at is not None


def test_a_key_cannot_name_what_its_maker_may_not_see(
    workspace, owner, outsider, make_member, echo_model, make_flow
):
    from django.core.exceptions import ValidationError

    from flows.models import Flow
    from workspaces.services import KeyScopes

    make_flow(echo_model, slug="alpha")
    theirs = Flow.objects.create(
        workspace=Workspace.objects.get(slug="other"), slug="theirs", name="Theirs"
    )
    limited = make_member("editor", "lim", limited=True)  # sees only what is shared with them
    mine = Flow.objects.get(slug="alpha")

    for user, flow in ((owner, theirs), (limited, mine)):
        with pytest.raises(ValidationError, match="Choose flows of this workspace"):
            api_key_create(
                workspace=workspace,
                name="x",
                user=user,
                scopes=KeyScopes(flow_access="run", flow_ids=[flow.id]),
            )
    assert not ApiKey.objects.exists()


def test_re_scoping_a_legacy_key_on_the_keys_page_makes_it_an_ordinary_key(
    client, workspace, owner, echo_model, make_flow
):

    from workspaces.access import KeyRefused
    from workspaces.models import AuditEvent

    alpha = make_flow(echo_model, slug="alpha")
    row, key = api_key_create(workspace=workspace, name="old")
    mark_keys_legacy()
    row.refresh_from_db()
    assert (row.legacy, row.host_issued, row.flow_access) == (True, True, "write")
    with pytest.raises(KeyRefused, match="an admin must confirm or re-scope it"):
        authenticate_api_key(f"Bearer {key}")

    client.force_login(owner)
    prefix = f"key{row.id}-"
    response = client.post(
        f"/keys/{row.id}/scopes",
        {
            f"{prefix}flow_access": "run",
            f"{prefix}flow_selection": "chosen",
            f"{prefix}flows": [alpha.id],
            f"{prefix}knowledge_access": "none",
            f"{prefix}knowledge_selection": "all",
            f"{prefix}expires_in": "never",
        },
    )

    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.legacy, row.flow_access, row.flow_ids) == (False, "run", [alpha.id])
    assert row.knowledge_access == "none" and row.expires_at is None
    assert AuditEvent.objects.get(action="key.scope").before["legacy"] is True
    assert authenticate_api_key(f"Bearer {key}") == row


def test_the_command_takes_scopes_and_an_expiry(db):
    from flows.demo import demo_seed

    demo_seed()
    out = io.StringIO()
    call_command(
        "apikey",
        "create",
        "--flow",
        "assistant",
        "--knowledge",
        "read",
        "--expires-days",
        "7",
        stdout=out,
    )
    row = ApiKey.objects.get()
    assert row.flow_access == "run" and len(row.flow_ids) == 1
    assert (row.knowledge_access, row.knowledge_base_ids) == ("read", None)
    assert row.host_issued and row.expires_at is not None
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no flow nope"):
        call_command("apikey", "create", "--flow", "nope")


def test_the_key_actions_take_post_only(client, workspace, owner):
    row, _ = api_key_create(workspace=workspace, name="k", user=owner)
    client.force_login(owner)
    for action in ("scopes", "confirm", "revoke"):
        assert client.get(f"/keys/{row.id}/{action}").status_code == 405
    # Confirming is for keys made before scopes only.
    refused = client.post(f"/keys/{row.id}/confirm")
    assert refused.status_code == 400
    assert "Only a key made before scopes needs confirming." in refused.text
    row.refresh_from_db()
    assert row.legacy_confirmed_at is None


def test_a_keys_last_use_is_written_at_most_once_a_minute(workspace, django_assert_num_queries):
    from datetime import timedelta

    from workspaces.access import LAST_USED_STEP

    api_key, key = api_key_create(workspace=workspace, name="busy")
    authenticate_api_key(f"Bearer {key}")
    first = ApiKey.objects.get(id=api_key.id).last_used_at
    assert first is not None

    # Within the minute: the key is read, its row is not written again.
    with django_assert_num_queries(1):
        assert authenticate_api_key(f"Bearer {key}") == api_key
    assert ApiKey.objects.get(id=api_key.id).last_used_at == first

    # A minute on, the next use moves it.
    ApiKey.objects.filter(id=api_key.id).update(last_used_at=first - LAST_USED_STEP)
    authenticate_api_key(f"Bearer {key}")
    later = ApiKey.objects.get(id=api_key.id).last_used_at
    assert later > first - LAST_USED_STEP + timedelta(seconds=59)
