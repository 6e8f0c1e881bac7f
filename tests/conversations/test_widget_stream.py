"""The embed widget's run socket: its end user's answer streams on the widget's token, checked
against the handshake's origin; nobody else's token, no token, and no other web site get a
single event."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from conversations.models import Source
from conversations.routing import websocket_urlpatterns
from conversations.services import conversation_start, message_send
from conversations.widget import EmbedSettings, embed_settings_change
from conversations.widget_tokens import WidgetSession, token_mint
from flows.models import RunSource

SITE = "https://shop.example"
app = URLRouter(websocket_urlpatterns)


@pytest.fixture
def widget_answer(worker, owner, echo_model, make_flow):
    """A visitor's question in a widget conversation: the settings, the session, the run."""
    flow = make_flow(echo_model)
    embed = EmbedSettings(
        enabled=True,
        allowed_origins=[SITE],
        title="",
        colour="#112233",
        sign_in_required=False,
        remote_images=False,
        requests_per_minute=None,
        tokens_per_day=None,
    )
    settings = embed_settings_change(flow=flow, user=owner, embed=embed)
    session = WidgetSession(flow_id=flow.id, origin=SITE, end_user="visitor:one")
    conversation = conversation_start(flow=flow, end_user=session.end_user, source=Source.WIDGET)
    exchange = message_send(conversation=conversation, text="hello", source=RunSource.WIDGET)
    return settings, session, exchange.run


def _socket(settings, run, token: str | None, origin: str | None) -> WebsocketCommunicator:
    query = f"?after=0&token={token}" if token else "?after=0"
    headers = [(b"host", b"testserver")]
    if origin:
        headers.append((b"origin", origin.encode()))
    path = f"/ws/embed/{settings.embed_id}/runs/{run.id}/{query}"
    return WebsocketCommunicator(app, path, headers=headers)


async def _closed_with(ws) -> int:
    assert (await ws.connect())[0]  # accepted, then closed with the reason's code
    message = await ws.receive_output(timeout=10)
    await ws.disconnect()
    assert message["type"] == "websocket.close"
    return message["code"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_end_user_follows_their_answer_from_the_listed_site(widget_answer):
    settings, session, run = widget_answer
    ws = _socket(settings, run, token_mint(session), SITE)
    assert (await ws.connect())[0]
    events = []
    while not events or events[-1]["type"] not in ("run.finished", "run.failed"):
        events.append(await ws.receive_json_from(timeout=20))
    await ws.disconnect()
    assert events[-1]["type"] == "run.finished"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_studios_own_page_may_follow_too(widget_answer):
    settings, session, run = widget_answer
    ws = _socket(settings, run, token_mint(session), "http://testserver")
    assert (await ws.connect())[0]
    assert (await ws.receive_json_from(timeout=20))["seq"] == 1
    await ws.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("who", "origin", "code"),
    [
        ("none", SITE, 4401),
        ("forged", SITE, 4401),
        ("stranger", SITE, 4403),
        ("owner", "https://evil.example", 4403),
        ("owner", "null", 4403),
        ("other site", "https://evil.example", 4403),
    ],
)
async def test_no_other_token_or_site_gets_an_event(widget_answer, who, origin, code):
    settings, session, run = widget_answer
    token = {
        "none": None,
        "forged": "wt_" + "A" * 60,
        "stranger": token_mint(WidgetSession(session.flow_id, SITE, "visitor:two")),
        "owner": token_mint(session),
        "other site": token_mint(WidgetSession(session.flow_id, "https://evil.example", "x")),
    }[who]
    assert await _closed_with(_socket(settings, run, token, origin)) == code


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_widget_turned_off_stops_its_streams(widget_answer, owner):
    settings, session, run = widget_answer
    settings.embed_enabled = False
    await database_sync_to_async(settings.save)()
    assert await _closed_with(_socket(settings, run, token_mint(session), SITE)) == 4403
