"""Access is re-checked on live connections and task entry: a revoked role stops a stream that
is already flowing, a quiet one, and the worker's next step of a run."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from catalog.services import model_create
from flows.models import Run, RunSource, RunStatus
from flows.routing import websocket_urlpatterns
from flows.services import run_create
from workspaces.models import Membership
from workspaces.services import member_change, member_remove, user_deactivate

app = URLRouter(websocket_urlpatterns)
WORDS = " ".join(f"w{i}" for i in range(60))


def connect(run_id, user) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(app, f"/ws/runs/{run_id}/")
    ws.scope["user"] = user
    return ws


def _quiet_run(flow, user) -> Run:
    """A run nobody has dispatched: it stays queued, so its socket carries nothing."""
    from datetime import timedelta

    from django.utils import timezone

    return Run.objects.create(
        workspace_id=flow.workspace_id,
        flow=flow,
        flow_version=flow.published_version,
        inputs={"message": "quiet"},
        created_by=user,
        deadline_at=timezone.now() + timedelta(minutes=10),
    )


def _start(flow, user) -> Run:
    return run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": WORDS},
        source=RunSource.STUDIO,
        user=user,
    )


@pytest.fixture
def ticking_flow(transactional_db, make_flow):
    model = model_create(slug="ticker", name="Ticker", engine="echo", settings={"delay_ms": 80})
    return make_flow(model)


@pytest.mark.asyncio
async def test_removing_a_member_stops_their_flowing_stream(worker, ticking_flow, owner, viewer):
    run = await database_sync_to_async(_start)(ticking_flow, owner)
    ws = connect(run.id, viewer)
    assert (await ws.connect())[0]
    tokens = 0
    while tokens < 3:
        tokens += (await ws.receive_json_from(timeout=20))["type"] == "token"

    membership = await Membership.objects.aget(user=viewer)
    await database_sync_to_async(member_remove)(membership=membership, actor=owner)

    # Whatever was already in flight may arrive; then the socket closes, long before the end.
    while True:
        message = await ws.receive_output(timeout=10)
        if message["type"] == "websocket.close":
            break
        assert '"run.finished"' not in message.get("text", "")
    assert message["code"] == 4403


@pytest.mark.asyncio
async def test_deactivating_a_user_closes_their_quiet_stream(ticking_flow, owner, make_member):
    run = await database_sync_to_async(_quiet_run)(ticking_flow, owner)
    admin = await database_sync_to_async(make_member)("admin", username="ada")
    watcher = await database_sync_to_async(make_member)("viewer", username="watcher")
    ws = connect(run.id, watcher)
    assert (await ws.connect())[0]

    await database_sync_to_async(user_deactivate)(user=watcher, actor=admin)

    # The access group message closes it at once; the keep-alive re-check would take 5 s.
    assert await ws.receive_output(timeout=4) == {"type": "websocket.close", "code": 4403}


@pytest.mark.asyncio
async def test_a_demoted_member_keeps_watching_while_they_may(ticking_flow, owner, make_member):
    run = await database_sync_to_async(_quiet_run)(ticking_flow, owner)
    editor = await database_sync_to_async(make_member)("editor", username="edith")
    ws = connect(run.id, editor)
    assert (await ws.connect())[0]
    membership = await Membership.objects.aget(user=editor)
    # Still a viewer: reading the run stays allowed.
    await database_sync_to_async(member_change)(
        membership=membership, role="viewer", limited=False, actor=owner
    )
    assert await ws.receive_nothing(timeout=1.5)
    # Limited with nothing shared: the flow is out of sight.
    await database_sync_to_async(member_change)(
        membership=membership, role="viewer", limited=True, actor=owner
    )
    assert await ws.receive_output(timeout=4) == {"type": "websocket.close", "code": 4403}


def test_a_run_whose_starter_lost_access_fails_at_the_worker(worker, ticking_flow, owner):
    from tests.flows.helpers import wait_for_run

    # The view checked the starter's access; it was taken away before a worker took the task.
    Membership.objects.filter(user=owner).update(role="viewer")
    run = _start(ticking_flow, owner)

    run = wait_for_run(run.id)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("permission revoked: the user who started the run")
