"""The memory pages: editors see and delete every end user's facts, an end user only their own,
and anyone outside the workspace gets 404."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.memory import fact_remember, user_subject
from agents.models import Fact
from agents.services import agent_create
from workspaces.audit import AuditEvent


@pytest.fixture
def agent(workspace, owner):
    return agent_create(workspace=workspace, name="Helper", slug="helper", actor=owner)


def _fact(agent, subject: str, text: str, direction: float = 1.0) -> Fact:
    vector = [direction] + [0.0] * 383
    return fact_remember(
        agent=agent, subject=subject, text=text, vector=vector, model_key="pages"
    ).fact


@pytest.fixture
def facts(agent, owner, viewer):
    return {
        "owner": _fact(agent, user_subject(owner.id), "Olive keeps bees."),
        "viewer": _fact(agent, user_subject(viewer.id), "Victor collects stamps."),
        "visitor": _fact(agent, "visitor:" + "a" * 40, "A visitor likes opera.", -1.0),
    }


def test_an_editor_sees_every_end_users_facts_and_deletes_one(client, owner, viewer, facts):
    client.force_login(owner)
    url = reverse("agents:agent-memory", args=["helper"])
    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Olive keeps bees." in text and "Victor collects stamps." in text
    assert "A visitor likes opera." in text and "Visitor aaaaaaaa" in text
    assert viewer.username in text
    response = client.post(url, {"fact": facts["viewer"].id})
    assert response.status_code == 302
    assert not Fact.objects.filter(id=facts["viewer"].id).exists()
    assert Fact.objects.count() == 2
    for junk in ("9" * 30, "\u00b2", "-1", ""):
        assert client.post(url, {"fact": junk}).status_code == 302
    assert Fact.objects.count() == 2
    assert AuditEvent.objects.filter(action="agent.fact_delete").count() == 1
    assert client.put(url).status_code == 405


def test_a_viewer_may_not_open_the_editors_memory_page(client, viewer, facts):
    client.force_login(viewer)
    url = reverse("agents:agent-memory", args=["helper"])
    assert client.get(url).status_code == 403
    assert client.post(url, {"fact": facts["owner"].id}).status_code == 403
    assert Fact.objects.count() == 3


def test_an_end_user_sees_and_deletes_only_their_own_facts(client, viewer, facts):
    client.force_login(viewer)
    url = reverse("agents:my-memory", args=["helper"])
    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Victor collects stamps." in text
    assert "Olive keeps bees." not in text and "likes opera" not in text
    # Another end user's fact, by id: nothing is deleted.
    assert client.post(url, {"fact": facts["owner"].id}).status_code == 302
    assert Fact.objects.filter(id=facts["owner"].id).exists()
    client.post(url, {"fact": facts["viewer"].id})
    assert not Fact.objects.filter(id=facts["viewer"].id).exists()
    assert "remembers nothing about you" in client.get(url).content.decode()
    assert client.put(url).status_code == 405


def test_an_outsider_gets_404_on_both_pages(client, outsider, facts):
    client.force_login(outsider)
    for name in ("agents:agent-memory", "agents:my-memory"):
        url = reverse(name, args=["helper"])
        assert client.get(url).status_code == 404
        assert client.post(url, {"fact": facts["owner"].id}).status_code == 404
    assert Fact.objects.count() == 3
