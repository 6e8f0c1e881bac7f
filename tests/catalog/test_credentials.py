"""Credentials: stored encrypted, shown never again (not on pages, not in the audit log, not in
logs), managed by admins only, and never deleted while a model uses one."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import connections
from django.urls import reverse
from pytest_django.asserts import assertRedirects

from catalog.engines.base import EngineError, GenerationRequest
from catalog.models import Credential
from catalog.secrets import decrypt
from catalog.services import model_create
from catalog.services.credentials import credential_create, credential_delete
from tests.catalog.remote_server import RemoteServer, Reply
from workers.resident import Resident
from workspaces.audit import audit_csv_rows
from workspaces.models import AuditEvent

SECRET = "sk-live-7Hq2xZp9LmW4vB8n"


@pytest.fixture
def admin_user(make_member):
    return make_member("admin", username="ada")


@pytest.fixture
def credential(workspace, owner):
    return credential_create(workspace=workspace, name="OpenAI", secret=SECRET, actor=owner)


def remote_model(workspace, credential, base_url="https://api.example.com/v1", slug="gpt"):
    return model_create(
        slug=slug,
        name=slug.upper(),
        engine="openai_compatible",
        weights="gpt-4o-mini",
        settings={"base_url": base_url},
        workspace=workspace,
        credential=credential,
    )


def audit_text(workspace) -> str:
    events = AuditEvent.objects.filter(workspace=workspace)
    return json.dumps(list(events.values()), default=str) + "".join(audit_csv_rows(events))


# --- storage --------------------------------------------------------------------------------


def test_the_secret_is_stored_encrypted_and_decrypts_back(credential):
    credential.refresh_from_db()
    ciphertext = bytes(credential.ciphertext)
    assert SECRET.encode() not in ciphertext and ciphertext != SECRET.encode()
    assert decrypt(ciphertext) == SECRET
    assert credential.hint == SECRET[-4:]
    assert SECRET not in repr(credential) and SECRET not in str(credential)


def test_a_pasted_secret_loses_its_surrounding_whitespace(workspace, owner):
    credential = credential_create(
        workspace=workspace, name="Pasted", secret=f"  {SECRET}\n", actor=owner
    )
    assert decrypt(credential.ciphertext) == SECRET


def test_names_are_unique_and_secrets_must_be_usable(workspace, owner, credential):
    cases = [
        ({"name": "OpenAI", "secret": SECRET}, "name"),
        ({"name": " ", "secret": SECRET}, "name"),
        ({"name": "Short", "secret": "abc"}, "secret"),
        ({"name": "Two lines", "secret": "sk-abcdef\nsk-ghijkl"}, "secret"),
    ]
    for values, field in cases:
        with pytest.raises(ValidationError) as caught:
            credential_create(workspace=workspace, actor=owner, **values)
        assert field in caught.value.message_dict, values
    assert Credential.objects.count() == 1


def test_the_audit_log_records_the_change_but_never_the_secret(workspace, owner):
    assert SECRET not in audit_text(workspace)
    credential = credential_create(workspace=workspace, name="OpenAI", secret=SECRET, actor=owner)
    created = AuditEvent.objects.get(action="credential.create")
    assert created.after == {"name": "OpenAI", "hint": SECRET[-4:], "allowed_hosts": []}
    assert created.actor == owner and created.target_id == str(credential.id)

    credential_delete(credential=credential, actor=owner)

    deleted = AuditEvent.objects.get(action="credential.delete")
    assert deleted.before == {"name": "OpenAI", "hint": SECRET[-4:], "allowed_hosts": []}
    assert SECRET not in audit_text(workspace)


# --- the page -------------------------------------------------------------------------------


def test_an_admin_adds_a_credential_and_the_page_never_shows_it_again(
    client, admin_user, workspace
):
    client.force_login(admin_user)
    response = client.post(
        reverse("catalog:credential-create"), {"name": "OpenAI", "secret": SECRET}
    )

    assertRedirects(response, reverse("catalog:credential-list"), fetch_redirect_response=False)
    credential = Credential.objects.get(workspace=workspace)
    assert credential.name == "OpenAI" and credential.created_by == admin_user
    assert decrypt(credential.ciphertext) == SECRET
    remote_model(workspace, credential, slug="gpt-mini")

    page = client.get(reverse("catalog:credential-list"))
    assert page.status_code == 200
    html = page.content.decode()
    assert SECRET not in html
    row = html[html.index('data-credential="OpenAI"') :].split("</tr>")[0]
    assert f"••••{SECRET[-4:]}" in row
    assert "ada" in row and "gpt-mini" in row  # who created it, which models use it
    assert "Its key is not shown again" in html


def test_an_admin_sets_where_http_nodes_may_send_a_credential(client, admin_user, workspace):
    client.force_login(admin_user)
    refused = client.post(
        reverse("catalog:credential-create"),
        {"name": "GitHub", "secret": SECRET, "allowed_hosts": "https://api.github.com/"},
    )
    assert refused.status_code == 400
    assert "Not a host" in refused.content.decode() and SECRET not in refused.content.decode()
    assert not Credential.objects.exists()

    response = client.post(
        reverse("catalog:credential-create"),
        {"name": "GitHub", "secret": SECRET, "allowed_hosts": "api.github.com, *.github.com"},
    )
    assertRedirects(response, reverse("catalog:credential-list"), fetch_redirect_response=False)
    credential = Credential.objects.get(workspace=workspace)
    assert credential.allowed_hosts == ["api.github.com", "*.github.com"]
    page = client.get(reverse("catalog:credential-list")).content.decode()
    assert 'value="api.github.com, *.github.com"' in page and SECRET not in page


def test_a_refused_form_does_not_echo_the_secret(client, owner, credential):
    client.force_login(owner)
    response = client.post(
        reverse("catalog:credential-create"), {"name": "OpenAI", "secret": SECRET}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "already exists" in html and SECRET not in html
    assert Credential.objects.count() == 1


def test_viewers_and_editors_may_not_see_or_manage_credentials(client, make_member, credential):
    for role in ("viewer", "operator", "editor"):
        client.force_login(make_member(role))
        assert client.get(reverse("catalog:credential-list")).status_code == 403
        response = client.post(
            reverse("catalog:credential-create"), {"name": "Mine", "secret": SECRET}
        )
        assert response.status_code == 403
        delete = reverse("catalog:credential-delete", args=[credential.id])
        assert client.post(delete).status_code == 403
    assert list(Credential.objects.values_list("name", flat=True)) == ["OpenAI"]


def test_another_workspaces_credential_is_not_found(client, outsider, credential):
    client.force_login(outsider)
    response = client.post(reverse("catalog:credential-delete", args=[credential.id]))
    assert response.status_code == 404
    assert Credential.objects.filter(id=credential.id).exists()
    # Their own page lists their own workspace's credentials: none of acme's.
    page = client.get(reverse("catalog:credential-list"))
    assert page.status_code == 200 and "No credentials yet" in page.content.decode()


def test_wrong_methods_are_refused(client, owner, credential):
    client.force_login(owner)
    assert client.get(reverse("catalog:credential-create")).status_code == 405
    assert client.get(reverse("catalog:credential-delete", args=[credential.id])).status_code == 405
    assert client.post(reverse("catalog:credential-list")).status_code == 405


def test_signed_out_visitors_are_sent_to_the_login(client, credential):
    response = client.get(reverse("catalog:credential-list"))
    assert response.status_code == 302 and "login" in response["Location"]


# --- deletion -------------------------------------------------------------------------------


def test_an_unused_credential_is_deleted(client, owner, credential):
    client.force_login(owner)
    response = client.post(reverse("catalog:credential-delete", args=[credential.id]))
    assertRedirects(response, reverse("catalog:credential-list"))
    assert not Credential.objects.filter(id=credential.id).exists()


def test_a_credential_in_use_is_not_deleted_and_nothing_is_lost(client, owner, credential):
    model = remote_model(credential.workspace, credential)
    before = bytes(Credential.objects.get(id=credential.id).ciphertext)
    client.force_login(owner)

    response = client.post(reverse("catalog:credential-delete", args=[credential.id]), follow=True)

    assert response.status_code == 200
    assert "is used by GPT" in response.content.decode()
    stored = Credential.objects.get(id=credential.id)
    assert bytes(stored.ciphertext) == before and decrypt(stored.ciphertext) == SECRET
    model.refresh_from_db()
    assert model.credential_id == credential.id
    assert not AuditEvent.objects.filter(action="credential.delete").exists()
    with pytest.raises(ValidationError, match="used by GPT"):
        credential_delete(credential=credential, actor=owner)


# --- logs -----------------------------------------------------------------------------------


@pytest.fixture
def server():
    remote = RemoteServer().start()
    yield remote
    remote.stop()


def test_a_failing_remote_call_logs_no_secret(
    transactional_db, server, settings, caplog, workspace, owner
):
    """Through the worker's own path (the resident runtime decrypts the credential), with every
    logger at DEBUG: httpx, httpcore and the engine's retry warnings."""
    settings.STUDIO_EGRESS_ALLOW = ["127.0.0.1"]
    credential = credential_create(workspace=workspace, name="Remote", secret=SECRET, actor=owner)
    model = remote_model(workspace, credential, base_url=f"{server.url}/v1")
    echoed = json.dumps({"error": {"message": f"Incorrect API key provided: {SECRET}"}})
    server.script(Reply(status=500, body=echoed), Reply(status=401, body=echoed))
    caplog.set_level(logging.DEBUG)

    async def call() -> None:
        try:
            engine = await Resident().engine_for(model)
            await engine.generate(GenerationRequest([{"role": "user", "content": "hi"}]))
        finally:
            # The async ORM's thread keeps its connection, which would hold the test database.
            await sync_to_async(connections.close_all)()

    with pytest.raises(EngineError) as caught:
        asyncio.run(call())

    assert "401" in str(caught.value) and SECRET not in str(caught.value)
    # The key went out (so the logs had a chance to leak it) and the retry was logged.
    assert server.requests[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert "retrying" in caplog.text
    assert SECRET not in caplog.text
