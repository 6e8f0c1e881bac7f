"""The embed widget: its settings, the page a web site frames, the sessions that give its end
users short-lived tokens bound to the flow and the web site, and its chat, which trusts the
token and never the studio's cookies."""

from __future__ import annotations

import json
import secrets
import threading

import pytest
from django.core import signing
from django.db import connection
from django.test import Client
from django.urls import reverse
from pytest_django.asserts import assertContains

from conversations.models import ChatSettings, Conversation, Source
from conversations.origins import OriginError, origin_normalise, origins_parse
from conversations.widget import EmbedSettings, embed_settings_change, widget_admit
from conversations.widget_tokens import PREFIX, SALT, WidgetSession, token_mint, token_read
from flows.models import Run, RunSource
from tests.conftest import PASSWORD
from tests.flows.helpers import wait_for_run
from workspaces.models import AuditEvent

SITE = "https://shop.example"


@pytest.fixture
def client():
    """A browser at an address of its own: new sessions are throttled per address, and Redis
    keeps its counters from one test to the next."""
    return Client(REMOTE_ADDR=f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.7")


@pytest.fixture
def embedded(owner, echo_model, make_flow):
    """A published flow whose widget is on, allowed on SITE; its chat settings."""
    flow = make_flow(echo_model)
    return embed_settings_change(flow=flow, user=owner, embed=_embed(allowed_origins=[SITE]))


def _embed(**changes) -> EmbedSettings:
    values = {
        "enabled": True,
        "allowed_origins": [],
        "title": "Help",
        "colour": "#112233",
        "sign_in_required": False,
        "remote_images": False,
        "requests_per_minute": None,
        "tokens_per_day": None,
    } | changes
    return EmbedSettings(**values)


def _session(client, settings, origin=SITE, *, sent=SITE, visitor="", token=None):
    headers = {"Origin": sent} if sent else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(
        reverse("conversations:widget-session", args=[settings.embed_id]),
        json.dumps({"origin": origin, "visitor": visitor}),
        content_type="application/json",
        headers=headers,
    )


def _token(client, settings, **kwargs) -> str:
    response = _session(client, settings, **kwargs)
    assert response.status_code == 200, response.content
    return response.json()["token"]


def _send(client, settings, token, text, conversation="", origin=None):
    headers = {"Authorization": f"Bearer {token}"}
    if origin:
        headers["Origin"] = origin
    return client.post(
        reverse("conversations:widget-send", args=[settings.embed_id]),
        {"message": text, "conversation": conversation},
        headers=headers,
    )


# --- origins --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "origin"),
    [
        ("HTTPS://Shop.Example:443/", "https://shop.example"),
        ("http://shop.example:80", "http://shop.example"),
        ("http://shop.example:8080", "http://shop.example:8080"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("https://127.0.0.1", "https://127.0.0.1"),
    ],
)
def test_an_origin_has_one_spelling(written, origin):
    assert origin_normalise(written) == origin


@pytest.mark.parametrize(
    "written",
    [
        "javascript:alert(1)",
        "https://*.example.com",
        "https://shop.example/path",
        "https://user@shop.example",
        "https://shop.example?x=1",
        "ftp://shop.example",
        "shop.example",
        "https://",
        "https://shop.example:99999",
        "https://" + "a" * 300 + ".example",
    ],
)
def test_what_is_not_one_origin_is_refused(written):
    with pytest.raises(OriginError):
        origin_normalise(written)


def test_an_origin_list_is_bounded_and_without_repeats():
    assert origins_parse("https://a.example\nHTTPS://A.example, https://b.example") == [
        "https://a.example",
        "https://b.example",
    ]
    with pytest.raises(OriginError):
        origins_parse(" ".join(f"https://s{i}.example" for i in range(21)))


# --- tokens ---------------------------------------------------------------------------------


def test_a_token_is_refused_when_forged_or_expired(settings):
    session = WidgetSession(flow_id=1, origin=SITE, end_user="visitor:abc")
    token = token_mint(session)
    assert token_read(token) == session
    forged = PREFIX + signing.dumps({"f": 2, "o": SITE, "e": "x"}, salt="another", compress=True)
    for bad in (None, "", "wt_nonsense", forged, token[:-2] + "xx", "x" * 5000):
        with pytest.raises(Exception, match="token"):
            token_read(bad)
    settings.STUDIO_WIDGET_TOKEN_TTL = -1
    with pytest.raises(Exception, match="expired"):
        token_read(token)
    assert SALT  # the salt keeps other signed values of the studio from passing as tokens


# --- settings -------------------------------------------------------------------------------


def test_an_editor_turns_the_widget_on_and_gets_its_code(client, owner, echo_model, make_flow):
    flow = make_flow(echo_model)
    client.force_login(owner)
    url = reverse("conversations:chat-settings", args=[flow.slug])
    data = {
        "form": "embed",
        "enabled": "on",
        "allowed_origins": "HTTPS://Shop.Example/\nhttp://localhost:8080",
        "title": 'Ask "us"',
        "colour": "#AA0000",
        "requests_per_minute": "10",
        "tokens_per_day": "",
    }

    assert client.post(url, data).status_code == 302

    settings = ChatSettings.objects.get(flow=flow)
    assert settings.allowed_origins == ["https://shop.example", "http://localhost:8080"]
    assert settings.embed_enabled and len(settings.embed_id) == 16
    assert (settings.widget_colour, settings.end_user_requests_per_minute) == ("#aa0000", 10)
    assert AuditEvent.objects.filter(action="flow.embed_settings").exists()
    page = client.get(url)
    assertContains(page, f"/embed/{settings.embed_id}/")
    assertContains(page, "conversations/embed.js")
    assertContains(page, "Ask &amp;quot;us&amp;quot;")  # escaped in the snippet, then on the page


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("allowed_origins", "https://*.example.com"),
        ("allowed_origins", "javascript:alert(1)"),
        ("colour", "red;background:url(x)"),
        ("requests_per_minute", "-1"),
        ("tokens_per_day", "1" + "0" * 20),
    ],
)
def test_bad_widget_settings_are_refused_and_change_nothing(client, owner, embedded, field, value):
    client.force_login(owner)
    url = reverse("conversations:chat-settings", args=[embedded.flow.slug])
    data = {"form": "embed", "enabled": "on", "colour": "#112233", field: value}
    assert client.post(url, data).status_code == 400
    before = embedded.allowed_origins
    embedded.refresh_from_db()
    assert embedded.allowed_origins == before and embedded.widget_colour == "#112233"


def test_only_the_flows_editors_change_its_widget(client, embedded, make_member, outsider):
    url = reverse("conversations:chat-settings", args=[embedded.flow.slug])
    data = {"form": "embed", "colour": "#000000", "allowed_origins": "https://evil.example"}
    client.force_login(make_member("operator"))
    assert client.post(url, data).status_code == 403
    client.force_login(outsider)
    assert client.post(url, data).status_code == 404
    embedded.refresh_from_db()
    assert embedded.allowed_origins == [SITE] and embedded.embed_enabled


# --- the page -------------------------------------------------------------------------------


def test_the_widget_page_may_be_framed_only_by_the_allowed_sites(client, embedded):
    response = client.get(reverse("conversations:widget", args=[embedded.embed_id]))
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {SITE};" in policy
    assert "img-src 'self' data:;" in policy
    assert "X-Frame-Options" not in response
    assertContains(response, "--accent: #112233")
    # Its Send says why it waits until its script has a token.
    assertContains(response, 'title="Connecting to the chat…" disabled>Send</button>')


def test_the_widget_page_is_gone_when_turned_off_or_unpublished(client, owner, embedded):
    url = reverse("conversations:widget", args=[embedded.embed_id])
    embed_settings_change(flow=embedded.flow, user=owner, embed=_embed(enabled=False))
    assert client.get(url).status_code == 404
    assert client.get(reverse("conversations:widget", args=["x" * 16])).status_code == 404


# --- sessions -------------------------------------------------------------------------------


def test_a_visitor_keeps_their_identity_between_sessions(client, embedded):
    first = _session(client, embedded).json()
    again = _session(client, embedded, visitor=first["visitor"]).json()
    assert again["visitor"] == first["visitor"]
    assert token_read(again["token"]).end_user == token_read(first["token"]).end_user
    stranger = _session(client, embedded, visitor="not a secret").json()
    assert stranger["visitor"] != first["visitor"]
    assert token_read(stranger["token"]).end_user != token_read(first["token"]).end_user


@pytest.mark.parametrize(
    ("claimed", "sent"),
    [
        ("https://evil.example", "https://evil.example"),  # a site not listed
        (SITE, "https://evil.example"),  # another site claiming a listed one
        ("https://shop.example.evil.example", None),  # a look-alike
        ("http://shop.example", None),  # the listed site without TLS
        (SITE, "null"),  # an opaque origin (sandboxed frame, file:)
    ],
)
def test_a_session_is_refused_for_a_site_not_listed(client, embedded, claimed, sent):
    response = _session(client, embedded, claimed, sent=sent)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"


def test_a_session_on_the_studios_own_page_is_allowed(client, embedded):
    own = "http://testserver"
    assert token_read(_token(client, embedded, origin=own, sent=own)).origin == own


def test_a_widget_that_needs_sign_in_refuses_visitors(client, owner, embedded):
    embed_settings_change(
        flow=embedded.flow, user=owner, embed=_embed(allowed_origins=[SITE], sign_in_required=True)
    )
    response = _session(client, embedded)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "sign_in"
    assert response["X-Sign-In"].startswith(f"/embed/{embedded.embed_id}/sign-in?origin=")

    sign_in = reverse("conversations:widget-sign-in", args=[embedded.embed_id])
    # The studio's login, at the window's own address, which keeps the widget as its opener.
    form = client.get(sign_in, {"origin": SITE})
    assertContains(form, 'name="password"')
    assert form["Cross-Origin-Opener-Policy"] == "unsafe-none"
    assert "data-token" not in form.content.decode()
    client.force_login(owner)
    assert client.get(sign_in, {"origin": "https://evil.example"}).status_code == 403
    page = client.get(sign_in, {"origin": SITE})
    token = page.content.decode().split('data-token="')[1].split('"')[0]
    session = token_read(token)
    assert session.user_id == owner.pk and session.origin == SITE
    # The member's widget renews its token with it; the visitor's secret is not needed.
    client.logout()
    renewed = _session(client, embedded, token=token)
    assert token_read(renewed.json()["token"]).user_id == owner.pk


def test_the_sign_in_window_logs_in_and_comes_back_to_itself(client, owner, embedded):
    url = reverse("conversations:widget-sign-in", args=[embedded.embed_id]) + f"?origin={SITE}"
    wrong = client.post(url, {"username": "olive", "password": "wrong"})
    assert wrong.status_code == 200 and "_auth_user_id" not in client.session
    assertContains(wrong, "correct username and password")

    signed_in = client.post(
        url + "&next=https://evil.example/", {"username": "olive", "password": PASSWORD}
    )

    assert signed_in.status_code == 302
    assert signed_in["Location"] == url + "&next=https://evil.example/"  # never elsewhere
    assert signed_in["Cross-Origin-Opener-Policy"] == "unsafe-none"
    assert int(client.session["_auth_user_id"]) == owner.pk
    token = client.get(url).content.decode().split('data-token="')[1].split('"')[0]
    assert token_read(token).user_id == owner.pk


def test_a_signed_in_member_chats_as_themself_and_regenerates(client, owner, embedded):
    embed_settings_change(
        flow=embedded.flow, user=owner, embed=_embed(allowed_origins=[SITE], sign_in_required=True)
    )
    client.force_login(owner)
    page = client.get(
        reverse("conversations:widget-sign-in", args=[embedded.embed_id]), {"origin": SITE}
    )
    token = page.content.decode().split('data-token="')[1].split('"')[0]
    client.logout()

    assert _send(client, embedded, token, "a member asks").status_code == 200

    conversation = Conversation.objects.get()
    assert conversation.user == owner and conversation.end_user == f"member:{owner.pk}"
    first = Run.objects.get()
    assert (first.source, first.created_by) == (RunSource.WIDGET, owner)
    answer = conversation.messages.get(role="assistant")
    regenerate = reverse("conversations:widget-regenerate", args=[embedded.embed_id, answer.id])
    again = client.post(regenerate, headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 200
    second = Run.objects.exclude(id=first.id).get()
    assert (second.source, second.created_by) == (RunSource.WIDGET, owner)
    assert conversation.messages.count() == 2


def test_new_sessions_from_one_address_are_throttled(client, embedded):
    statuses = [_session(client, embedded).status_code for _ in range(31)]
    assert statuses[:30] == [200] * 30 and statuses[30] == 429


# --- the chat -------------------------------------------------------------------------------


def test_a_visitor_chats_and_keeps_their_conversations(client, worker, embedded):
    first = _session(client, embedded).json()
    token = first["token"]

    sent = _send(client, embedded, token, "hello from the shop")

    assert sent.status_code == 200
    conversation = Conversation.objects.get()
    assert conversation.source == Source.WIDGET and conversation.user is None
    assert conversation.end_user == token_read(token).end_user
    assert f"/ws/embed/{embedded.embed_id}/runs/" not in sent.content.decode()
    assert "/runs/" not in sent.content.decode()  # no links to the studio's run pages
    run = Run.objects.get()
    assert run.source == RunSource.WIDGET and run.created_by is None
    wait_for_run(run.id)

    # The next visit, with a new token for the same visitor, finds the conversation.
    later = _token(client, embedded, visitor=first["visitor"])
    listing = client.get(
        reverse("conversations:widget-conversations", args=[embedded.embed_id]),
        headers={"Authorization": f"Bearer {later}"},
    )
    assertContains(listing, "hello from the shop")
    opened = client.get(
        reverse("conversations:widget-conversation", args=[embedded.embed_id, conversation.id]),
        headers={"Authorization": f"Bearer {later}"},
    )
    assertContains(opened, "hello from the shop")
    assert _send(client, embedded, later, "again", str(conversation.id)).status_code == 200
    assert conversation.messages.count() == 4


def test_another_visitor_or_a_member_cookie_reaches_nothing(client, owner, embedded):
    token = _token(client, embedded)
    _send(client, embedded, token, "mine")
    conversation = Conversation.objects.get()
    stranger = _token(client, embedded)
    url = reverse("conversations:widget-conversation", args=[embedded.embed_id, conversation.id])

    assert client.get(url, headers={"Authorization": f"Bearer {stranger}"}).status_code == 404
    assert _send(client, embedded, stranger, "hijack", str(conversation.id)).status_code == 404
    answer = conversation.messages.get(role="assistant")
    stop = reverse("conversations:widget-stop", args=[embedded.embed_id, answer.id])
    assert client.post(stop, headers={"Authorization": f"Bearer {stranger}"}).status_code == 404
    # The studio's session cookie is no credential here, not even the flow owner's.
    client.force_login(owner)
    assert client.get(url).status_code == 401
    assert _send(client, embedded, "", "cookie only").status_code == 401
    assert conversation.messages.count() == 2


def test_a_token_works_only_for_its_flow_and_its_listed_site(
    client, owner, embedded, echo_model, make_flow
):
    token = _token(client, embedded)
    other = make_flow(echo_model, slug="other")
    other_settings = embed_settings_change(
        flow=other, user=owner, embed=_embed(allowed_origins=[SITE])
    )
    assert _send(client, other_settings, token, "wrong flow").status_code == 404
    assert _send(client, embedded, token, "hi", origin="https://evil.example").status_code == 403
    # The site leaves the list: its tokens stop working at once.
    embed_settings_change(flow=embedded.flow, user=owner, embed=_embed(allowed_origins=[]))
    assert _send(client, embedded, token, "still here?").status_code == 403
    assert not Conversation.objects.exists()


def test_an_end_user_past_their_limit_gets_429(client, owner, embedded):
    embed_settings_change(
        flow=embedded.flow, user=owner, embed=_embed(allowed_origins=[SITE], requests_per_minute=2)
    )
    token = _token(client, embedded)
    first = _send(client, embedded, token, "one")
    conversation = str(Conversation.objects.get().id)
    assert first.status_code == 200
    assert _send(client, embedded, token, "two", conversation).status_code == 200
    refused = _send(client, embedded, token, "three", conversation)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assertContains(refused, "2 requests a minute", status_code=429)
    assert Conversation.objects.get().messages.count() == 4
    # Another end user of the same widget is not held back.
    assert _send(client, embedded, _token(client, embedded), "hello").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_messages_cannot_race_past_the_limit(owner, echo_model, make_flow):
    flow = make_flow(echo_model)
    settings = embed_settings_change(
        flow=flow, user=owner, embed=_embed(allowed_origins=[SITE], requests_per_minute=5)
    )
    settings.refresh_from_db()
    session = WidgetSession(flow_id=flow.id, origin=SITE, end_user="visitor:racer")
    admitted = []
    barrier = threading.Barrier(20)

    def knock():
        barrier.wait()
        admitted.append(widget_admit(session=session, flow=flow, settings=settings) is None)
        connection.close()

    threads = [threading.Thread(target=knock) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted.count(True) == 5


def test_remote_images_are_allowed_only_where_the_flow_allows(client, owner, embedded):
    page = reverse("conversations:widget", args=[embedded.embed_id])
    chat = reverse("conversations:chat", args=[embedded.flow.slug])
    client.force_login(owner)
    assert "https:" not in client.get(chat)["Content-Security-Policy"].split("img-src")[1]
    embed_settings_change(
        flow=embedded.flow, user=owner, embed=_embed(allowed_origins=[SITE], remote_images=True)
    )
    assert "img-src 'self' data: https:;" in client.get(page)["Content-Security-Policy"]
    assert "img-src 'self' data: https:;" in client.get(chat)["Content-Security-Policy"]
    assertContains(client.get(chat), "data-remote-images")


def test_an_end_users_tokens_of_today_are_counted(client, worker, owner, embedded):
    embed_settings_change(
        flow=embedded.flow, user=owner, embed=_embed(allowed_origins=[SITE], tokens_per_day=5)
    )
    token = _token(client, embedded)
    assert _send(client, embedded, token, "one two three four five six").status_code == 200
    conversation = Conversation.objects.get()
    wait_for_run(Run.objects.get().id)

    refused = _send(client, embedded, token, "more", str(conversation.id))

    assert refused.status_code == 429
    assertContains(refused, "5 tokens of today", status_code=429)
    assert conversation.messages.count() == 2


def test_the_chat_page_keeps_to_the_workspaces_limit(client, owner, workspace, embedded):
    workspace.requests_per_minute = 1
    workspace.save(update_fields=["requests_per_minute"])
    client.force_login(owner)
    send = reverse("conversations:chat-send", args=[embedded.flow.slug])
    assert client.post(send, {"message": "one"}).status_code == 200
    refused = client.post(send, {"message": "two"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert Conversation.objects.count() == 1  # the refused message started nothing
