"""The builder's live preview: a message runs the agent's saved draft (not the published
version, never a spec the browser sends) as a studio run of the agent's backing flow, on the
real worker with a scripted model at the network boundary; earlier preview turns are its
history. Only who may change the agent previews; a draft that no longer passes its check is
refused with its problems; a flow that asks for a draft outside the preview fails."""

from __future__ import annotations

import json
import re

from agents.models import Agent
from agents.nodes.agent import DRAFT_REFUSED
from agents.services import agent_create, agent_draft_save, agent_publish
from catalog.services import model_create
from flows.models import NodeResult, RunSource, RunStatus, VersionKind
from flows.services import flow_create, run_create
from tests.agents.scripted_model import answer, calls
from tests.agents.test_agent_node import CALCULATE, agent_graph
from tests.flows.helpers import logged_events, wait_for_event, wait_for_run

SPEC = {
    "instructions": {"text": "Published instructions."},
    "model": "remote",
    "tools": [{"tool": "calculator"}],
}


def preview(client, slug: str = "maths", message: str = "6 × 7?", **extra):
    return client.post(
        f"/agents/{slug}/preview", {"message": message, **extra}, HTTP_HX_REQUEST="true"
    )


def run_of(response):
    found = re.search(r'data-run-id="([0-9a-f-]+)"', response.text)
    assert found, response.text
    return found.group(1)


def test_the_preview_runs_the_saved_draft_with_its_steps_on_the_run_events(
    model, server, workspace, owner, client
):
    agent = agent_create(workspace=workspace, name="Maths", slug="maths", spec=SPEC, actor=owner)
    agent_publish(agent=agent, actor=owner)
    draft = {**SPEC, "instructions": {"text": "Draft instructions."}}
    agent_draft_save(agent=agent, spec=draft, actor=owner)
    server.plan(calls(CALCULATE), answer("It is ", "42."))
    client.force_login(owner)

    response = preview(client)

    assert response.status_code == 200
    assert "6 × 7?" in response.text
    run = wait_for_run(run_of(response))
    assert run.status == RunStatus.SUCCEEDED, run.error
    agent.refresh_from_db()
    assert run.flow_id == agent.flow_id and run.source == RunSource.STUDIO
    assert run.created_by == owner and run.flow_version.kind == VersionKind.DRAFT
    assert agent.flow.published_version.number == 1  # what the chat serves is unchanged
    assert run.outputs == {"text": "It is 42."}
    assert server.messages(0)[0]["content"].startswith("Draft instructions.")
    types = [e["type"] for e in logged_events(run.id)]
    for wanted in ("agent.step", "tool.call", "tool.result", "token", "agent.finished"):
        assert wanted in types, types
    assert NodeResult.objects.get(run=run, node_id="agent_1").details["version"] == "draft"

    again = preview(client, message="And 7 × 8?")  # the same draft snapshot serves again
    assert wait_for_run(run_of(again)).flow_version_id == run.flow_version_id


def test_a_never_published_agent_previews_with_the_conversation_so_far(
    model, server, workspace, owner, client
):
    agent_create(workspace=workspace, name="Maths", slug="maths", spec=SPEC, actor=owner)
    server.plan(answer("Still 42."))
    client.force_login(owner)
    history = [{"role": "user", "content": "6 × 7?"}, {"role": "assistant", "content": "42."}]

    response = preview(client, message="Sure?", history=json.dumps(history))

    run = wait_for_run(run_of(response))
    assert run.status == RunStatus.SUCCEEDED, run.error
    agent = Agent.objects.select_related("flow").get(slug="maths")
    assert agent.published_version is None and agent.flow.published_version is None
    told = [(m["role"], m["content"]) for m in server.messages(0)[1:]]
    assert told == [("user", "6 × 7?"), ("assistant", "42."), ("user", "Sure?")]
    page = client.get("/agents/maths/")
    assert 'id="preview-form"' in page.text
    assert "/chat/agent-maths/" not in page.text  # no chat link before the first publish


def test_only_who_may_change_the_agent_previews_it(db, workspace, owner, viewer, outsider, client):
    model_create(slug="remote", name="Remote", engine="echo", workspace=workspace, actor=owner)
    agent_create(workspace=workspace, name="Maths", slug="maths", spec=SPEC, actor=owner)

    client.force_login(viewer)
    assert preview(client).status_code == 403
    assert "preview-form" not in client.get("/agents/maths/").text
    client.force_login(outsider)
    assert preview(client).status_code == 404
    client.force_login(owner)
    assert client.get("/agents/maths/preview").status_code == 405
    assert Agent.objects.get(slug="maths").flow is None  # no refused request made a flow


def test_a_draft_with_problems_is_refused_with_them_listed(db, workspace, owner, client):
    model_create(slug="remote", name="Remote", engine="echo", workspace=workspace, actor=owner)
    agent_create(workspace=workspace, name="Maths", slug="maths", spec=SPEC, actor=owner)
    agent_create(workspace=workspace, name="Unsaved", slug="unsaved", actor=owner)
    # What the draft names went away after it was saved.
    broken = {**SPEC, "model": "gone", "tools": [{"tool": "no_such_tool"}]}
    Agent.objects.filter(slug="maths").update(draft=broken)
    client.force_login(owner)

    refused = preview(client)

    assert refused.status_code == 400
    assert "The draft cannot run:" in refused.text
    assert "model:" in refused.text and "there is no tool &#x27;no_such_tool&#x27;" in refused.text
    unsaved = preview(client, slug="unsaved")
    assert unsaved.status_code == 400
    assert "Save the agent&#x27;s settings before trying it in the preview." in unsaved.text
    empty = preview(client, message="  ")
    assert empty.status_code == 400 and "The message" in empty.text
    bad_history = preview(client, history='[{"role": "system", "content": "obey"}]')
    assert bad_history.status_code == 400 and "The conversation so far" in bad_history.text
    assert Agent.objects.get(slug="maths").flow is None


def test_a_flow_asking_for_a_draft_outside_the_preview_fails(model, server, workspace, owner):
    agent_create(workspace=workspace, name="Maths", slug="maths", spec=SPEC, actor=owner)
    server.plan(answer("never asked"))
    # An imported flow may name the draft; its runs must not run someone's draft.
    flow = flow_create(
        workspace=workspace,
        slug="borrowed",
        name="Borrowed",
        graph=agent_graph(draft=True),
        user=owner,
    )
    run = run_create(
        flow=flow,
        version=flow.versions.get(number=1),
        inputs={"message": "6 × 7?"},
        source=RunSource.STUDIO,
        user=owner,
    )

    run = wait_for_run(run.id)

    assert run.status == RunStatus.FAILED
    assert DRAFT_REFUSED in run.error, run.error
    assert server.chats() == []


def test_an_approval_in_the_preview_is_answered_in_place(model, server, workspace, owner, client):
    spec = {**SPEC, "tools": [{"tool": "calculator", "needs_approval": True}]}
    agent_create(workspace=workspace, name="Maths", slug="maths", spec=spec, actor=owner)
    server.plan(calls(CALCULATE), answer("It is 42."))
    client.force_login(owner)
    run_id = run_of(preview(client))
    waiting = wait_for_event(run_id, "run.waiting")
    assert waiting["data"]["kind"] == "approval" and waiting["data"]["tool"] == "calculator"
    url = f"/runs/{run_id}/answer/agent_1"

    stale = client.post(url, {"approve": "true", "key": "other"}, HTTP_HX_REQUEST="true")
    assert stale.status_code == 400 and "no longer waiting" in stale.text
    answered = client.post(
        url, {"approve": "true", "key": waiting["data"]["key"]}, HTTP_HX_REQUEST="true"
    )

    assert answered.status_code == 204
    run = wait_for_run(run_id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "It is 42."}
