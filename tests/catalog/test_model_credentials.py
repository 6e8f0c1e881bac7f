"""A model's credential goes where its settings point: only an admin who manages credentials may
attach one, or move (engine, settings) a model that has one. An "edit" grant on a model does not
reach the workspace's secrets: not in the form's list, not through a crafted POST, not through
the service, and, end to end through the real worker, no key reaches a server of the editor's."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from catalog.models import Model
from catalog.services import model_create, model_update
from catalog.services.credentials import credential_create
from flows.models import RunSource, RunStatus
from flows.services import run_create
from tests.catalog.remote_server import RemoteServer, Reply, text_events
from tests.flows.helpers import wait_for_run
from workspaces.models import AuditEvent
from workspaces.sharing import object_grant

SECRET = "sk-live-Kc83jdLq0ZmP1vX7"


@pytest.fixture
def credential(workspace, owner):
    return credential_create(workspace=workspace, name="OpenAI prod", secret=SECRET, actor=owner)


@pytest.fixture
def editor(make_member):
    """An editor (not an admin) given "edit" on the models of these tests."""
    return make_member("editor", username="eddie")


@pytest.fixture
def admin_user(make_member):
    return make_member("admin", username="ada")


def granted(model: Model, editor, owner) -> Model:
    object_grant(obj=model, subject=editor, level="edit", actor=owner)
    return model


def edit_form(model: Model, **overrides) -> dict[str, str]:
    """The edit form as the page fills it for ``model``, with ``overrides``."""
    data = {
        "name": model.name,
        "slug": model.slug,
        "task": model.task,
        "source": model.source,
        "status": model.status,
        "engine": model.engine,
        "weights": model.weights,
        "revision": "",
        "quantization": "",
        "dtype": "",
        "context_length": str(model.context_length),
        "settings": json.dumps(model.settings),
        "sampling": "{}",
        "price_input": "0",
        "price_output": "0",
        "tags": "",
        "credential": str(model.credential_id or ""),
        "description": model.description,
        "card": "",
    }
    data.update(overrides)
    return data


def stored(model: Model) -> tuple:
    model.refresh_from_db()
    return (model.engine, model.settings, model.credential_id)


def edit_url(model: Model) -> str:
    return reverse("catalog:model-edit", args=[model.id])


@pytest.fixture
def echo(workspace, owner, editor):
    return granted(
        model_create(slug="helper", name="Helper", engine="echo", workspace=workspace),
        editor,
        owner,
    )


@pytest.fixture
def remote(workspace, owner, editor, credential):
    """A model an admin pointed at the provider with the workspace's key."""
    model = model_create(
        slug="gpt",
        name="GPT",
        engine="openai_compatible",
        weights="gpt-4o-mini",
        settings={"base_url": "https://api.openai.com/v1"},
        workspace=workspace,
        credential=credential,
        actor=owner,
    )
    return granted(model, editor, owner)


# --- the form -------------------------------------------------------------------------------


def test_edit_grant_cannot_attach_credential(client, editor, echo, credential):
    """The finding: switch to openai_compatible, point it at my server, pick the key."""
    before = stored(echo)
    events = AuditEvent.objects.filter(action="model.change").count()
    client.force_login(editor)
    response = client.post(
        edit_url(echo),
        edit_form(
            echo,
            engine="openai_compatible",
            settings=json.dumps({"base_url": "http://127.0.0.1:9/v1"}),
            credential=str(credential.id),
        ),
    )
    assert response.status_code == 400
    assert "may not attach it" in " ".join(response.context["form"].errors["credential"])
    assert stored(echo) == before
    assert AuditEvent.objects.filter(action="model.change").count() == events


def test_the_form_lists_no_credential_to_an_editor(client, editor, echo, credential):
    client.force_login(editor)
    page = client.get(edit_url(echo))
    assert page.status_code == 200
    assert list(page.context["form"].fields["credential"].queryset) == []
    assertNotContains(page, "OpenAI prod")
    assertContains(page, "Only an admin who manages credentials")


def test_the_form_shows_an_editor_only_the_models_own_credential(client, editor, remote):
    client.force_login(editor)
    page = client.get(edit_url(remote))
    assert [c.name for c in page.context["form"].fields["credential"].queryset] == ["OpenAI prod"]
    assertNotContains(page, SECRET)


@pytest.mark.parametrize(
    "overrides",
    [
        {"settings": json.dumps({"base_url": "http://127.0.0.1:9/v1"})},
        {"settings": json.dumps({"base_url": "https://api.openai.com/v1", "organization": "x"})},
        {"engine": "echo", "settings": "{}"},
    ],
    ids=["base-url", "other-setting", "engine"],
)
def test_edit_grant_cannot_move_a_model_that_has_a_credential(client, editor, remote, overrides):
    before = stored(remote)
    client.force_login(editor)
    response = client.post(edit_url(remote), edit_form(remote, **overrides))
    assert response.status_code == 400
    assertContains(response, "only an admin who manages credentials", status_code=400)
    assert stored(remote) == before


def test_an_editor_may_still_edit_the_rest_and_drop_the_credential(client, editor, remote):
    client.force_login(editor)
    response = client.post(edit_url(remote), edit_form(remote, description="Careful."))
    assertRedirects(response, reverse("catalog:model-detail", args=[remote.id]))
    remote.refresh_from_db()
    assert remote.description == "Careful." and remote.credential is not None

    dropped = edit_form(remote, credential="")
    assertRedirects(
        client.post(edit_url(remote), dropped), reverse("catalog:model-detail", args=[remote.id])
    )
    assert stored(remote) == ("openai_compatible", {"base_url": "https://api.openai.com/v1"}, None)


def test_edit_grant_cannot_point_a_remote_model_elsewhere_even_without_a_key(
    client, editor, remote, echo
):
    """Without a key nothing leaks, but the endpoint may lie in a network the operator trusts
    for model fleets only (STUDIO_EGRESS_ALLOW_MODELS): admins choose where a remote model
    calls, and an "edit" grant cannot turn a local model into a remote one either."""
    client.force_login(editor)
    client.post(edit_url(remote), edit_form(remote, credential=""))
    before = stored(remote), stored(echo)
    moved = edit_form(
        remote, credential="", settings=json.dumps({"base_url": "http://10.0.0.7:8000/v1"})
    )
    response = client.post(edit_url(remote), moved)
    assertContains(
        response, "Only an admin who manages credentials may set where a remote", status_code=400
    )
    made_remote = edit_form(
        echo, engine="openai_compatible", settings=json.dumps({"base_url": "http://10.0.0.7/v1"})
    )
    assert client.post(edit_url(echo), made_remote).status_code == 400
    assert (stored(remote), stored(echo)) == before


def test_an_admin_may_attach_a_credential_and_move_the_endpoint(
    client, admin_user, echo, credential
):
    client.force_login(admin_user)
    page = client.get(edit_url(echo))
    assertContains(page, "OpenAI prod")
    settings = {"base_url": "https://llm.internal.example/v1"}
    response = client.post(
        edit_url(echo),
        edit_form(
            echo,
            engine="openai_compatible",
            settings=json.dumps(settings),
            credential=str(credential.id),
        ),
    )
    assertRedirects(response, reverse("catalog:model-detail", args=[echo.id]))
    assert stored(echo) == ("openai_compatible", settings, credential.id)


# --- the service ----------------------------------------------------------------------------


def test_the_service_refuses_an_editor_whoever_calls_it(editor, echo, remote, credential):
    before = stored(echo), stored(remote)
    with pytest.raises(ValidationError) as refused:
        model_update(
            model=echo,
            actor=editor,
            engine="openai_compatible",
            settings={"base_url": "http://127.0.0.1:9/v1"},
            credential=credential,
        )
    assert "credential" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        model_update(model=remote, actor=editor, settings={"base_url": "http://127.0.0.1:9/v1"})
    assert "settings" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        model_create(
            slug="mine",
            name="Mine",
            engine="openai_compatible",
            settings={"base_url": "http://127.0.0.1:9/v1"},
            workspace=echo.workspace,
            credential=credential,
            actor=editor,
        )
    assert "credential" in refused.value.message_dict
    assert (stored(echo), stored(remote)) == before
    assert not Model.objects.filter(slug="mine").exists()


def test_the_service_lets_an_admin_and_the_studio_itself_attach_one(
    admin_user, echo, remote, credential
):
    model_update(model=remote, actor=admin_user, settings={"base_url": "https://b.example/v1"})
    model_update(
        model=echo,
        actor=None,
        engine="openai_compatible",
        credential=credential,
        settings={"base_url": "https://c.example/v1"},
    )
    assert stored(remote)[1:] == ({"base_url": "https://b.example/v1"}, credential.id)
    assert stored(echo)[2] == credential.id


# --- end to end -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def attacker():
    """A server of the editor's, speaking OpenAI's protocol: it records what it is sent."""
    server = RemoteServer().start()
    yield server
    server.stop()


def test_no_credential_reaches_an_editors_server_through_the_worker(
    worker_may_call_loopback, worker, attacker, client, editor, owner, make_flow, credential
):
    echo = granted(
        model_create(slug="helper", name="Helper", engine="echo", workspace=credential.workspace),
        editor,
        owner,
    )
    attacker.script(Reply(events=text_events("pwned")))
    settings = json.dumps({"base_url": f"{attacker.url}/v1", "retries": 0})
    client.force_login(editor)

    refused = client.post(
        edit_url(echo),
        edit_form(
            echo, engine="openai_compatible", settings=settings, credential=str(credential.id)
        ),
    )
    # Nor the same endpoint without the key: where a remote model calls is an admin's choice.
    keyless = client.post(
        edit_url(echo), edit_form(echo, engine="openai_compatible", settings=settings)
    )
    assert (refused.status_code, keyless.status_code) == (400, 400)
    echo.refresh_from_db()
    assert (echo.engine, echo.credential_id) == ("echo", None)

    flow = make_flow(echo)
    run = run_create(
        flow=flow, version=flow.published_version, inputs={"message": "hi"}, source=RunSource.STUDIO
    )
    run = wait_for_run(run.id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert attacker.requests == []  # the worker never called the editor's server
