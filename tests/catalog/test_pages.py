"""The catalog's model pages: browse and filter (htmx swaps only the results), a model's page
with its safely rendered card and its adapters, create/edit/delete with validated fields and an
audit entry each, and who may do what."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from catalog import schemas
from catalog.cards import render_card
from catalog.engines import ENGINES, engine_class, engine_kinds
from catalog.engines.base import Chunk, Engine, GenerationRequest
from catalog.models import Credential, LoraAdapter, Model
from catalog.secrets import encrypt
from catalog.services import adapter_create, model_create
from tests.conftest import PASSWORD
from workspaces.models import AuditEvent
from workspaces.services import member_add, workspace_create
from workspaces.sharing import object_grant

LIST = reverse("catalog:model-list")
CREATE = reverse("catalog:model-create")


@pytest.fixture
def catalog(workspace, owner):
    """Two models of acme and one shared, different in every filtered field."""
    alpha = model_create(
        slug="alpha",
        name="Alpha Chat",
        engine="echo",
        task="chat",
        source="open_weight",
        tags=["Fast", "english"],
        description="A quick assistant for support.",
        workspace=workspace,
        actor=owner,
    )
    beta = model_create(
        slug="beta-embed",
        name="Beta Embeddings",
        engine="sentence_transformers",
        weights="/models/beta",
        task="embedding",
        source="domain_specific",
        tags=["legal"],
        status="unavailable",
        description="Vectors for contracts.",
        workspace=workspace,
        actor=owner,
    )
    gamma = model_create(
        slug="gamma-rerank",
        name="Gamma Reranker",
        engine="echo",
        task="rerank",
        source="partner_api",
        tags=["fast", "multilingual"],
        status="loading",
    )
    return {"alpha": alpha, "beta": beta, "gamma": gamma}


def slugs(response) -> set[str]:
    return set(re.findall(r'<tr data-slug="([^"]+)"', response.content.decode()))


def valid_form(**overrides) -> dict:
    data = {
        "name": "Delta",
        "slug": "delta",
        "task": "chat",
        "source": "fine_tuned",
        "status": "available",
        "engine": "echo",
        "weights": "",
        "revision": "",
        "quantization": "",
        "dtype": "",
        "context_length": "4096",
        "settings": '{"delay_ms": 5}',
        "sampling": '{"temperature": 0.7, "max_tokens": 256}',
        "price_input": "0.15",
        "price_output": "0.6",
        "tags": "  Support, support ,LEGAL,,  Multi   Word ",
        "credential": "",
        "description": "For the help desk.",
        "card": "# Delta\n\nTuned on tickets.",
    }
    data.update(overrides)
    return data


# --- browsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"alpha", "beta-embed", "gamma-rerank"}),
        ({"q": "contracts"}, {"beta-embed"}),  # description
        ({"q": "ALPHA"}, {"alpha"}),  # name, any case
        ({"q": "rerank"}, {"gamma-rerank"}),  # slug
        ({"q": "multiling"}, {"gamma-rerank"}),  # part of a tag
        ({"task": "embedding"}, {"beta-embed"}),
        ({"engine": "sentence_transformers"}, {"beta-embed"}),
        ({"source": "partner_api"}, {"gamma-rerank"}),
        ({"tag": "fast"}, {"alpha", "gamma-rerank"}),
        ({"status": "loading"}, {"gamma-rerank"}),
        ({"tag": "fast", "task": "chat"}, {"alpha"}),
        ({"q": "nothing like this"}, set()),
        # A value that is not a choice is dropped, not an error page.
        ({"task": "bogus"}, {"alpha", "beta-embed", "gamma-rerank"}),
    ],
)
def test_each_filter_narrows_the_catalog(client, owner, catalog, params, expected):
    client.force_login(owner)
    response = client.get(LIST, params)
    assert response.status_code == 200
    assert slugs(response) == expected
    if not expected:
        assertContains(response, "No model matches these filters.")


def test_an_htmx_request_gets_only_the_results_table(client, owner, catalog):
    client.force_login(owner)
    response = client.get(LIST, {"tag": "legal"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="model-results"')
    assert "<html" not in body and "<form" not in body
    assert slugs(response) == {"beta-embed"}
    assert "HX-Request" in response["Vary"]

    page = client.get(LIST, {"tag": "legal"})
    assertContains(page, "<html")
    assertContains(page, 'hx-target="#model-results"')
    assertContains(page, '<div id="model-results"')
    # Browser history restores ask for the whole page, though they come by htmx.
    restore = client.get(LIST, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assertContains(restore, "<html")


def test_the_tag_filter_offers_the_tags_in_use(client, owner, catalog):
    client.force_login(owner)
    response = client.get(LIST)
    for tag in ("english", "fast", "legal", "multilingual"):
        assertContains(response, f'<option value="{tag}">{tag}</option>', html=True)


def test_a_limited_member_sees_only_shared_models_and_those_shared_with_them(
    client, make_member, owner, catalog
):
    limited = make_member("editor", limited=True)
    client.force_login(limited)
    assert slugs(client.get(LIST)) == {"gamma-rerank"}
    assert (
        client.get(reverse("catalog:model-detail", args=[catalog["alpha"].id])).status_code == 404
    )

    object_grant(obj=catalog["alpha"], subject=limited, level="view", actor=owner)
    assert slugs(client.get(LIST)) == {"alpha", "gamma-rerank"}
    assert (
        client.get(reverse("catalog:model-detail", args=[catalog["alpha"].id])).status_code == 200
    )


def test_another_workspaces_models_are_not_listed(client, outsider, catalog):
    client.force_login(outsider)
    response = client.get(LIST)
    assert slugs(response) == {"gamma-rerank"}  # only the shared one
    assertNotContains(response, "Alpha Chat")


# --- the model page ---------------------------------------------------------------------------


def test_the_model_page_shows_its_fields_prices_adapters_and_links(
    client, owner, workspace, adapter_engine
):
    credential = Credential.objects.create(
        workspace=workspace, name="Provider key", ciphertext=encrypt("sk-secret-1234"), hint="1234"
    )
    model = model_create(
        slug="served",
        name="Served Model",
        engine=adapter_engine,
        weights="Qwen/Qwen2.5-0.5B-Instruct",
        revision="main",
        quantization="awq",
        dtype="bfloat16",
        context_length=32768,
        sampling={"temperature": 0.2},
        price_input=Decimal("0.5"),
        price_output=Decimal("1.25"),
        tags=["small"],
        credential=credential,
        card="Some **bold** claims.",
        workspace=workspace,
        actor=owner,
    )
    adapter_create(base=model, slug="sql", name="SQL writer", weights="/adapters/sql", actor=owner)
    client.force_login(owner)
    response = client.get(reverse("catalog:model-detail", args=[model.id]))
    assert response.status_code == 200
    for text in (
        "Served Model",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "awq",
        "bfloat16",
        "32768 tokens",
        "0.5000 per million tokens",
        "1.2500 per million tokens",
        "<b>temperature</b> 0.2",
        "Provider key",
        "…1234",
        "<strong>bold</strong>",
        "SQL writer",
        "served:sql",
        f'href="/catalog/usage/?model={model.id}"',
        f'href="/catalog/playground/?a={model.id}"',
        f'href="{reverse("catalog:model-edit", args=[model.id])}"',
    ):
        assertContains(response, text)
    assertNotContains(response, "sk-secret")  # only the hint of a credential, never the secret


def test_a_viewer_sees_the_page_without_change_buttons(client, viewer, catalog):
    client.force_login(viewer)
    response = client.get(reverse("catalog:model-detail", args=[catalog["alpha"].id]))
    assert response.status_code == 200
    assertNotContains(response, reverse("catalog:model-edit", args=[catalog["alpha"].id]))
    assertNotContains(response, reverse("catalog:model-delete", args=[catalog["alpha"].id]))
    assertNotContains(response, reverse("catalog:adapter-create", args=[catalog["alpha"].id]))


HOSTILE_CARD = """# Card

<script>alert("card")</script>

Inline <img src=x onerror="alert(1)"> and <b onclick="alert(2)">raw</b> HTML.

[click](javascript:alert(3)) [again](JAVASCRIPT:alert(4)) [encoded](&#106;avascript:alert(5))
[data](data:text/html;base64,PHNjcmlwdD5hbGVydCg2KTwvc2NyaXB0Pg==)
![pixel](data:image/png;base64,iVBORw0KGgo=) [vb](vbscript:msgbox(7)) <javascript:alert(8)>

[fine](https://example.com/docs) [mail](mailto:team@example.com) **bold**
"""


def test_the_model_card_renders_markdown_and_leaves_html_and_scripts_inert(
    client, owner, workspace
):
    model = model_create(
        slug="hostile", name="Hostile", engine="echo", card=HOSTILE_CARD, workspace=workspace
    )
    client.force_login(owner)
    page = client.get(reverse("catalog:model-detail", args=[model.id])).content.decode()
    card = page.split('id="model-card">', 1)[1].split("</article>", 1)[0]
    # Raw HTML comes out as text, escaped: no tag of it reaches the page.
    assert "<script" not in card and "&lt;script&gt;" in card
    assert "<img" not in card and "&lt;img src=x onerror=" in card
    assert "<b " not in card and "&lt;b onclick=" in card
    # Only http(s) and mailto links become links; the others stay as their markdown text.
    hrefs = re.findall(r'(?:href|src)="([^"]*)"', card)
    assert hrefs == ["https://example.com/docs", "mailto:team@example.com"]
    assert "[click](javascript:alert(3))" in card
    assert 'rel="nofollow noopener noreferrer"' in card
    assert "<h1>Card</h1>" in card and "<strong>bold</strong>" in card


@pytest.mark.parametrize(
    "markdown",
    [
        "<script>alert(1)</script>",
        '<img src="x" onerror="alert(1)">',
        "<iframe src='https://evil.example'></iframe>",
        "[x](javascript:alert(1))",
        "[x](java\tscript:alert(1))",
        "[x](java&#x09;script:alert(1))",
        "[x](  javascript:alert(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "![x](data:image/svg+xml,<svg onload=alert(1)>)",
        "[x](file:///etc/passwd)",
        "<a href='javascript:alert(1)'>x</a>",
        '[x](https://ok.example "a" onclick="alert(1)")',
    ],
)
def test_no_card_markup_can_run_script(markdown):
    html = str(render_card(markdown))
    tags = re.findall(r"<[a-z][^>]*>", html)
    for tag in tags:
        assert not re.search(r"\son\w+\s*=", tag), tag  # no event handler attribute
        assert not re.search(r"(href|src)=\"\s*(javascript|data|vbscript|file)", tag, re.I), tag
        assert re.match(r"<(p|a|img|code|em|strong|h\d|br)\b", tag), tag


def test_card_links_may_be_relative_or_fragments():
    html = str(render_card("[docs](/catalog/) [top](#usage)"))
    assert 'href="/catalog/"' in html and 'href="#usage"' in html


# --- create and edit --------------------------------------------------------------------------


def test_creating_a_model_stores_every_field_normalised_and_audits_it(client, owner, workspace):
    credential = Credential.objects.create(
        workspace=workspace, name="Provider", ciphertext=encrypt("sk-x"), hint="xxxx"
    )
    client.force_login(owner)
    assertContains(client.get(CREATE), "Engine settings")
    response = client.post(CREATE, valid_form(credential=str(credential.id)))
    model = Model.objects.get(slug="delta")
    assertRedirects(response, reverse("catalog:model-detail", args=[model.id]))
    assert model.workspace == workspace
    assert model.tags == ["support", "legal", "multi word"]
    assert model.settings == {"delay_ms": 5.0}
    assert model.sampling == {"temperature": 0.7, "max_tokens": 256}
    assert (model.price_input, model.price_output) == (Decimal("0.15"), Decimal("0.6"))
    assert (model.source, model.context_length, model.credential) == (
        "fine_tuned",
        4096,
        credential,
    )
    event = AuditEvent.objects.get(action="model.create", target_id=str(model.id))
    assert event.actor == owner and event.workspace_id == workspace.id
    assert event.after["tags"] == ["support", "legal", "multi word"]
    assert event.after["credential"] == credential.id  # the id, never the secret
    assert event.after["price_input"] == "0.1500"
    assert "sk-x" not in str(event.after)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"settings": "{not json"}, "settings", "not valid JSON"),
        ({"settings": "[1, 2]"}, "settings", "must be a JSON object"),
        ({"settings": '{"delay_ms": -1}'}, "settings", "delay_ms: Input should be greater"),
        ({"settings": '{"gpu": 1}'}, "settings", "gpu: Extra inputs are not permitted"),
        ({"engine": "warp-drive"}, "engine", "Select a valid choice"),
        ({"sampling": '{"temperature": 3}'}, "sampling", "temperature: Input should be less"),
        ({"sampling": '{"top_p": -0.1}'}, "sampling", "top_p: Input should be greater"),
        ({"sampling": '{"max_tokens": 0}'}, "sampling", "max_tokens: Input should be greater"),
        ({"sampling": '{"seed": 1}'}, "sampling", "seed: Extra inputs are not permitted"),
        ({"sampling": "7"}, "sampling", "must be a JSON object"),
        ({"tags": ",".join(f"t{i}" for i in range(21))}, "tags", "At most 20 tags"),
        ({"tags": "x" * 41}, "tags", "longer than 40 characters"),
        ({"slug": "Not a slug!"}, "slug", "Enter a valid"),
        ({"price_input": "-1"}, "price_input", "greater than or equal to 0"),
        ({"context_length": "0"}, "context_length", "greater than or equal to 1"),
        ({"dtype": "int3"}, "dtype", "Select a valid choice"),
    ],
)
def test_a_refused_create_shows_the_field_error_and_changes_nothing(
    client, owner, workspace, overrides, field, message
):
    client.force_login(owner)
    events = AuditEvent.objects.count()
    response = client.post(CREATE, valid_form(**overrides))
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assertContains(response, message, status_code=400)
    assert not Model.objects.filter(slug__in=["delta", "Not a slug!"]).exists()
    assert AuditEvent.objects.count() == events


def test_an_empty_post_is_refused_not_taken_for_a_page_view(client, owner, workspace):
    client.force_login(owner)
    response = client.post(CREATE, {})
    assert response.status_code == 400
    assert {"name", "slug", "engine"} <= set(response.context["form"].errors)
    assert not Model.objects.filter(workspace=workspace).exists()


def test_the_service_refuses_what_the_form_would(workspace):
    """Whoever calls it (a seed command, the API), the service checks every value itself."""
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as refused:
        model_create(
            slug="x",
            name="X",
            engine="warp-drive",
            sampling={"temperature": 7},
            tags=["t", "y" * 41],
            status="sleeping",
            workspace=workspace,
        )
    errors = refused.value.message_dict
    assert "Unknown engine 'warp-drive'." in errors["engine"]
    assert {"sampling", "tags", "status"} <= set(errors)
    assert not Model.objects.exists() and AuditEvent.objects.count() == events


def test_a_slug_in_use_is_refused(client, owner, catalog):
    client.force_login(owner)
    response = client.post(CREATE, valid_form(slug="alpha"))
    assert response.status_code == 400
    assert "already exists" in response.context["form"].errors["slug"][0]
    assert Model.objects.filter(slug="alpha").count() == 1


def test_only_the_workspaces_credentials_can_be_chosen(client, owner, workspace, outsider):
    foreign = Credential.objects.create(
        workspace=outsider.memberships.get().workspace, name="Theirs", ciphertext=encrypt("sk-o")
    )
    client.force_login(owner)
    assertNotContains(client.get(CREATE), "Theirs")
    response = client.post(CREATE, valid_form(credential=str(foreign.id)))
    assert response.status_code == 400
    assert "credential" in response.context["form"].errors
    assert not Model.objects.filter(slug="delta").exists()
    # The service refuses it too, whoever calls it.
    with pytest.raises(ValidationError) as refused:
        model_create(slug="x", name="X", engine="echo", workspace=workspace, credential=foreign)
    assert "credential" in refused.value.message_dict


def test_editing_a_model_saves_the_changes_and_audits_before_and_after(client, owner, catalog):
    alpha = catalog["alpha"]
    client.force_login(owner)
    form = client.get(reverse("catalog:model-edit", args=[alpha.id]))
    assertContains(form, "fast, english")
    data = valid_form(slug="alpha", name="Alpha Two", tags="Fast, new", engine="echo")
    response = client.post(reverse("catalog:model-edit", args=[alpha.id]), data)
    assertRedirects(response, reverse("catalog:model-detail", args=[alpha.id]))
    alpha.refresh_from_db()
    assert (alpha.name, alpha.tags, alpha.source) == ("Alpha Two", ["fast", "new"], "fine_tuned")
    event = AuditEvent.objects.get(action="model.change", target_id=str(alpha.id))
    assert event.before["name"] == "Alpha Chat" and event.after["name"] == "Alpha Two"
    assert event.before["tags"] == ["fast", "english"] and event.after["tags"] == ["fast", "new"]


def test_a_refused_edit_keeps_the_model_as_it_was(client, owner, catalog):
    alpha = catalog["alpha"]
    client.force_login(owner)
    for bad in ({"settings": "{oops"}, {"sampling": '{"temperature": 9}'}, {"engine": "nope"}):
        response = client.post(
            reverse("catalog:model-edit", args=[alpha.id]), valid_form(slug="alpha", **bad)
        )
        assert response.status_code == 400
        alpha.refresh_from_db()
        assert (alpha.name, alpha.settings, alpha.sampling) == ("Alpha Chat", {}, {})
    assert not AuditEvent.objects.filter(action="model.change").exists()


def test_changing_the_engine_rechecks_the_settings(owner, catalog):
    from catalog.services import model_update

    slow = model_create(slug="slow", name="Slow", engine="echo", settings={"delay_ms": 10})
    with pytest.raises(ValidationError) as refused:
        model_update(model=slow, engine="cpu", actor=owner)  # cpu has no delay_ms
    assert "delay_ms" in str(refused.value.message_dict["settings"])
    slow.refresh_from_db()
    assert slow.engine == "echo"


def test_saving_an_unchanged_form_records_nothing(client, owner, catalog):
    alpha = catalog["alpha"]
    client.force_login(owner)
    initial = client.get(reverse("catalog:model-edit", args=[alpha.id])).context["form"].initial
    data = {k: "" if v is None else v for k, v in initial.items()}
    response = client.post(reverse("catalog:model-edit", args=[alpha.id]), data)
    assertRedirects(response, reverse("catalog:model-detail", args=[alpha.id]))
    assert not AuditEvent.objects.filter(action="model.change").exists()


def test_deleting_a_model_removes_it_and_audits_it(client, owner, catalog):
    beta = catalog["beta"]
    client.force_login(owner)
    response = client.post(reverse("catalog:model-delete", args=[beta.id]))
    assertRedirects(response, LIST)
    assert not Model.objects.filter(id=beta.id).exists()
    event = AuditEvent.objects.get(action="model.delete", target_id=str(beta.id))
    assert event.before["slug"] == "beta-embed" and event.after is None


def test_tags_are_trimmed_lowercased_and_unique():
    assert schemas.tags_clean(" Fast,fast , LEGAL ,, Multi   Word") == [
        "fast",
        "legal",
        "multi word",
    ]
    assert schemas.tags_clean(["A", "a", " b "]) == ["a", "b"]
    assert schemas.tags_clean(None) == []
    with pytest.raises(ValidationError):
        schemas.tags_clean([f"t{i}" for i in range(21)])
    with pytest.raises(ValidationError):
        schemas.tags_clean(["y" * 41])


# --- adapters ---------------------------------------------------------------------------------


class _AdapterEngine(Engine):
    """A stand-in engine kind that serves adapters (as vLLM does), registered per test."""

    kind = "test-adapters"
    supports_adapters = True

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        yield Chunk(text="ok", input_tokens=1, output_tokens=1, finish_reason="stop")


@pytest.fixture
def adapter_engine():
    engine_kinds()  # discover the real engines first: the registry discovers only when empty
    ENGINES[_AdapterEngine.kind] = _AdapterEngine
    yield _AdapterEngine.kind
    del ENGINES[_AdapterEngine.kind]


def test_an_adapter_on_a_cpu_model_is_refused(client, owner, workspace):
    beta = model_create(
        slug="beta", name="Beta", engine="cpu", weights="/models/beta", workspace=workspace
    )
    assert engine_class("cpu").supports_adapters is False
    client.force_login(owner)
    page = client.get(reverse("catalog:model-detail", args=[beta.id]))
    assertContains(page, "The cpu engine cannot serve LoRA adapters.")
    response = client.post(
        reverse("catalog:adapter-create", args=[beta.id]),
        {"name": "SQL", "slug": "sql", "weights": "/adapters/sql"},
    )
    assertContains(response, "cannot serve LoRA adapters", status_code=400)
    assert not LoraAdapter.objects.exists()
    assert not AuditEvent.objects.filter(action="adapter.create").exists()


def test_adapters_are_added_and_deleted_on_an_engine_that_serves_them(
    client, owner, workspace, adapter_engine
):
    base = model_create(
        slug="base", name="Base", engine=adapter_engine, weights="org/base", workspace=workspace
    )
    client.force_login(owner)
    url = reverse("catalog:adapter-create", args=[base.id])
    response = client.post(
        url, {"name": "SQL writer", "slug": "sql", "weights": "org/sql-lora", "description": "x"}
    )
    assertRedirects(response, reverse("catalog:model-detail", args=[base.id]))
    adapter = LoraAdapter.objects.get(base=base, slug="sql")
    assert (adapter.name, adapter.weights) == ("SQL writer", "org/sql-lora")
    created = AuditEvent.objects.get(action="adapter.create")
    assert created.after["base"] == base.id and created.workspace_id == workspace.id

    again = client.post(url, {"name": "Other", "slug": "sql", "weights": "org/other"})
    assert again.status_code == 400
    assert LoraAdapter.objects.filter(base=base).count() == 1
    missing = client.post(url, {"name": "No weights", "slug": "nw", "weights": ""})
    assert missing.status_code == 400

    response = client.post(reverse("catalog:adapter-delete", args=[adapter.id]))
    assertRedirects(response, reverse("catalog:model-detail", args=[base.id]))
    assert not LoraAdapter.objects.exists()
    deleted = AuditEvent.objects.get(action="adapter.delete")
    assert deleted.before["slug"] == "sql" and deleted.actor == owner


@pytest.mark.skipif("vllm" not in engine_kinds(), reason="the vLLM engine is not installed")
def test_the_vllm_engine_takes_adapters(owner, workspace):
    assert engine_class("vllm").supports_adapters
    base = model_create(
        slug="qwen", name="Qwen", engine="vllm", weights="Qwen/Qwen2.5-0.5B", workspace=workspace
    )
    adapter = adapter_create(base=base, slug="a", name="A", weights="org/a", actor=owner)
    assert adapter.base == base


# --- who may do what --------------------------------------------------------------------------


def test_a_viewer_can_browse_but_not_create_edit_or_delete(client, viewer, catalog):
    alpha = catalog["alpha"]
    client.force_login(viewer)
    assert client.get(LIST).status_code == 200
    assertNotContains(client.get(LIST), CREATE)
    assert client.get(CREATE).status_code == 403
    assert client.post(CREATE, valid_form()).status_code == 403
    assert client.get(reverse("catalog:model-edit", args=[alpha.id])).status_code == 403
    edit = client.post(reverse("catalog:model-edit", args=[alpha.id]), valid_form(slug="alpha"))
    assert edit.status_code == 403
    assert client.post(reverse("catalog:model-delete", args=[alpha.id])).status_code == 403
    adapter = client.post(
        reverse("catalog:adapter-create", args=[alpha.id]),
        {"name": "a", "slug": "a", "weights": "w"},
    )
    assert adapter.status_code == 403
    alpha.refresh_from_db()
    assert alpha.name == "Alpha Chat" and not Model.objects.filter(slug="delta").exists()


def test_an_adapter_can_be_deleted_only_by_who_may_change_its_base(
    client, viewer, outsider, owner, workspace, adapter_engine
):
    base = model_create(slug="base", name="Base", engine=adapter_engine, workspace=workspace)
    adapter = adapter_create(base=base, slug="a", name="A", weights="org/a", actor=owner)
    url = reverse("catalog:adapter-delete", args=[adapter.id])
    client.force_login(viewer)
    assert client.post(url).status_code == 403
    client.force_login(outsider)
    assert client.post(url).status_code == 404
    assert LoraAdapter.objects.filter(id=adapter.id).exists()


def test_another_workspaces_model_is_not_found(client, outsider, catalog):
    alpha = catalog["alpha"]
    client.force_login(outsider)
    assert client.get(reverse("catalog:model-detail", args=[alpha.id])).status_code == 404
    assert client.get(reverse("catalog:model-edit", args=[alpha.id])).status_code == 404
    assert (
        client.post(reverse("catalog:model-edit", args=[alpha.id]), valid_form()).status_code == 404
    )
    assert client.post(reverse("catalog:model-delete", args=[alpha.id])).status_code == 404
    assert client.post(reverse("catalog:adapter-create", args=[alpha.id])).status_code == 404
    assert Model.objects.filter(id=alpha.id).exists()


def test_a_shared_model_is_read_only_except_to_superusers(client, owner, catalog):
    gamma = catalog["gamma"]
    client.force_login(owner)
    assert client.get(reverse("catalog:model-detail", args=[gamma.id])).status_code == 200
    assert client.get(reverse("catalog:model-edit", args=[gamma.id])).status_code == 403
    assert client.post(reverse("catalog:model-delete", args=[gamma.id])).status_code == 403

    root = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    member_add(workspace=workspace_create(slug="ops", name="Ops"), user=root, role="owner")
    client.force_login(root)
    data = valid_form(
        slug="gamma-rerank", name="Gamma v2", task="rerank", settings="{}", tags="fast"
    )
    response = client.post(reverse("catalog:model-edit", args=[gamma.id]), data)
    assertRedirects(response, reverse("catalog:model-detail", args=[gamma.id]))
    gamma.refresh_from_db()
    assert gamma.name == "Gamma v2" and gamma.workspace is None


@pytest.mark.parametrize(
    "name",
    ["catalog:model-delete", "catalog:adapter-create", "catalog:adapter-delete"],
    ids=lambda n: n,
)
def test_post_routes_refuse_get(client, owner, catalog, adapter_engine, name):
    base = model_create(
        slug="b", name="B", engine=adapter_engine, workspace=catalog["alpha"].workspace
    )
    adapter = adapter_create(base=base, slug="a", name="A", weights="org/a")
    arg = adapter.id if name == "catalog:adapter-delete" else base.id
    client.force_login(owner)
    assert client.get(reverse(name, args=[arg])).status_code == 405
    assert LoraAdapter.objects.filter(id=adapter.id).exists()


def test_the_list_refuses_post_and_the_forms_refuse_put(client, owner, catalog):
    client.force_login(owner)
    assert client.post(LIST).status_code == 405
    assert client.put(CREATE).status_code == 405
    assert client.put(reverse("catalog:model-edit", args=[catalog["alpha"].id])).status_code == 405
