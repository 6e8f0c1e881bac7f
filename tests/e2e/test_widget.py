"""The embed widget in a real browser, on a page of another web site: the bubble opens the
chat, a visitor's conversation survives a reload, a site not on the flow's list cannot even
show the frame, and a widget whose end users must sign in chats as the member who signed in
through its pop-up (and with no one else)."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from conversations.models import Conversation
from conversations.widget import EmbedSettings, embed_settings_change
from flows.models import Run, RunSource
from studio import launch
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e


class HostSite:
    """Another web site (``http://localhost:<port>``, not the studio's ``127.0.0.1``) whose one
    page carries the widget's snippet."""

    def __init__(self, snippet: str) -> None:
        page = f"<!doctype html><title>Shop</title><h1>Our shop</h1>{snippet}".encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args) -> None:
                pass

        self.port = launch.free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://localhost:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def widget(live_studio, owner, echo_model, make_flow):
    """The flow's widget, and a function making a host site that embeds it (allowed or not)."""
    flow = make_flow(echo_model)
    sites = []

    def site(allowed: bool, sign_in: bool = False) -> HostSite:
        settings = embed_settings_change(
            flow=flow,
            user=owner,
            embed=EmbedSettings(
                enabled=True,
                allowed_origins=[],
                title="Shop help",
                colour="#aa3300",
                sign_in_required=sign_in,
                remote_images=False,
                requests_per_minute=None,
                tokens_per_day=None,
            ),
        )
        url = f"{live_studio}/embed/{settings.embed_id}/"
        snippet = (
            f'<script src="{live_studio}/static/conversations/embed.js" '
            f'data-studio-widget="{url}" data-colour="#aa3300" defer></script>'
        )
        host = HostSite(snippet)
        sites.append(host)
        if allowed:
            settings.allowed_origins = [host.origin]
            settings.save(update_fields=["allowed_origins"])
        return host

    yield site
    for host in sites:
        host.close()


def test_a_visitor_chats_in_the_bubble_on_an_allowed_site_and_keeps_the_conversation(
    browser, widget
):
    host = widget(allowed=True)
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{host.origin}/")

    page.get_by_role("button", name="Open the chat").click()
    chat = page.frame_locator("iframe[title=Chat]")
    expect(chat.get_by_role("heading", name="Shop help")).to_be_visible()
    chat.get_by_label("Message").fill("where is my parcel")
    chat.get_by_role("button", name="Send").click()
    answer = chat.locator(".bubble.assistant").last
    expect(answer.locator(".meta")).to_contain_text("Done")
    expect(answer.locator(".text")).to_contain_text("where is my parcel")
    expect(answer.locator("a.run-link")).to_have_count(0)  # visitors do not see runs

    # A reload of the shop's page: the visitor's conversation is still theirs.
    page.reload()
    page.get_by_role("button", name="Open the chat").click()
    chat = page.frame_locator("iframe[title=Chat]")
    expect(chat.locator(".bubble.user")).to_contain_text("where is my parcel")
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Open the chat")).to_be_focused()
    context.close()


def test_a_site_not_on_the_list_cannot_show_the_widget(browser, widget):
    host = widget(allowed=False)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    refusals = []
    page.on("console", lambda message: refusals.append(message.text))
    page.goto(f"{host.origin}/")

    page.get_by_role("button", name="Open the chat").click()

    # Chromium refuses to render the frame, and says why in the page's console.
    for _ in range(40):
        if any("frame-ancestors" in text for text in refusals):
            break
        page.wait_for_timeout(250)
    assert any("frame-ancestors" in text for text in refusals), refusals
    chat = page.frame_locator("iframe[title=Chat]")
    assert chat.locator("#chat-form").count() == 0
    context.close()


def test_a_widget_that_needs_sign_in_chats_as_the_member_who_signs_in(browser, widget, owner):
    host = widget(allowed=True, sign_in=True)
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{host.origin}/")
    page.get_by_role("button", name="Open the chat").click()
    chat = page.frame_locator("iframe[title=Chat]")

    # A visitor is asked to sign in and cannot send, not even with the form forced open.
    expect(chat.get_by_text("Sign in with your studio account to chat.")).to_be_visible()
    send = chat.get_by_role("button", name="Send")
    expect(send).to_be_disabled()
    expect(send).to_have_attribute("title", "Sign in first to chat")
    chat.locator("#chat-form").evaluate(
        "form => form.querySelectorAll('input, button').forEach((e) => { e.disabled = false; })"
    )
    chat.get_by_label("Message").fill("let me in")
    with page.expect_response("**/send") as refused:
        send.click()
    assert refused.value.status == 401
    assert not Conversation.objects.exists()

    # The pop-up is the studio's login; once signed in it hands the widget a token and closes.
    with context.expect_page() as opened:
        chat.get_by_role("button", name="Sign in").click()
    popup = opened.value
    expect(popup.get_by_role("heading", name="Sign in to chat with Assistant")).to_be_visible()
    popup.get_by_label("Username").fill("olive")
    popup.get_by_label("Password").fill(PASSWORD)
    popup.get_by_role("button", name="Log in").click()
    popup.wait_for_event("close")

    expect(chat.get_by_text("Sign in with your studio account to chat.")).to_be_hidden()
    expect(send).to_be_enabled()
    expect(send).not_to_have_attribute("title", re.compile("."))
    chat.get_by_label("Message").fill("hello as a member")
    send.click()
    answer = chat.locator(".bubble.assistant").last
    expect(answer.locator(".meta")).to_contain_text("Done")
    expect(answer.locator(".text")).to_contain_text("hello as a member")

    conversation = Conversation.objects.get()
    assert conversation.user == owner and conversation.end_user == f"member:{owner.pk}"
    run = Run.objects.get()
    assert (run.source, run.created_by) == (RunSource.WIDGET, owner)
    context.close()
