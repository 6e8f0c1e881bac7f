"""The chat page in a real browser: the answer streams in token by token over the WebSocket."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import WebSocketRoute, expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

MESSAGE = "alpha beta gamma delta epsilon"


def send(page, message: str):
    page.goto("/chat/assistant/")
    page.get_by_label("Message").fill(message)
    page.get_by_role("button", name="Send").click()
    return page.locator(".bubble.assistant").last


def test_chat_streams_the_answer_then_links_to_the_run(page, owner, make_flow):
    from catalog.services import model_create

    # 400 ms a token: a wide window to see the partial answer even on a busy machine.
    make_flow(model_create(slug="slower", name="Slower", engine="echo", settings={"delay_ms": 400}))
    log_in(page, "olive", PASSWORD)

    bubble = send(page, MESSAGE)

    expect(page.locator(".bubble.user")).to_have_text(MESSAGE)
    expect(page.get_by_label("Message")).to_have_value("")  # cleared after sending
    answer = bubble.locator(".text")
    expect(answer).to_contain_text("alpha")
    assert "epsilon" not in answer.text_content()  # a partial answer: it streams
    expect(answer).to_have_text(MESSAGE)
    expect(bubble).to_have_class(re.compile(r"\bdone\b"))
    expect(bubble.locator(".meta")).to_contain_text("Done · 5 tokens")
    page.screenshot(path="/tmp/chat.png")

    bubble.get_by_role("link", name="View run").click()

    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}/$"))
    expect(page.locator("#trace .run-status")).to_contain_text("Succeeded")
    expect(page.locator("#trace")).to_contain_text("llm_1")


def test_a_dropped_socket_resumes_without_losing_or_repeating_tokens(
    page, owner, slow_echo_model, make_flow
):
    make_flow(slow_echo_model, max_tokens=64)
    log_in(page, "olive", PASSWORD)
    urls: list[str] = []

    def cut_after_first_token(ws: WebSocketRoute) -> None:
        """Forward the run's events; drop the first connection right after its first token."""
        urls.append(ws.url)
        server = ws.connect_to_server()

        def forward(message) -> None:
            ws.send(message)
            if len(urls) == 1 and '"type": "token"' in message:
                ws.close(code=1011, reason="cut by the test")
                server.close()

        server.on_message(forward)

    page.route_web_socket(re.compile(r"/ws/runs/"), cut_after_first_token)

    bubble = send(page, MESSAGE)

    expect(bubble.locator(".text")).to_have_text(MESSAGE)
    expect(bubble.locator(".meta")).to_contain_text("Done · 5 tokens")
    assert len(urls) == 2, urls
    assert urls[0].endswith("?after=0&batch=1")
    assert int(urls[1].rpartition("after=")[2].partition("&")[0]) > 0  # after the last event seen


def test_a_failed_run_shows_its_reason_in_the_chat_and_on_the_run_page(page, owner, make_flow):
    from catalog.services import model_create

    broken = model_create(slug="broken", name="Broken", engine="cpu", weights="/nonexistent")
    make_flow(broken)
    log_in(page, "olive", PASSWORD)

    bubble = send(page, "hello")

    expect(bubble).to_have_class(re.compile(r"\bfailed\b"))
    expect(bubble.locator(".error-text")).to_contain_text("could not load model weights")
    bubble.get_by_role("link", name="View run").click()

    trace = page.locator("#trace")
    expect(trace.locator(".run-status")).to_contain_text("Failed")
    expect(trace.get_by_role("alert")).to_contain_text("/nonexistent")
    expect(trace).to_contain_text("node 'llm_1' failed")
