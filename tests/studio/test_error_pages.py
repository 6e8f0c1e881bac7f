"""The error pages: in the studio's layout with a way back for people, JSON for the APIs."""

from __future__ import annotations

import json

import pytest
from django.test import Client, RequestFactory
from django.urls import get_resolver, reverse

pytestmark = pytest.mark.django_db


def test_missing_page_is_the_studio_404_with_a_way_home(client, owner):
    client.force_login(owner)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Page not found" in body
    assert 'class="topbar"' in body  # inside the layout, navigation included
    assert f'href="{reverse("flows:home")}"' in body
    assert "data-go-back" in body


def test_missing_object_of_a_page_is_the_studio_404(client, owner):
    client.force_login(owner)
    response = client.get(reverse("flows:flow-detail", args=["nowhere"]))
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_refused_action_is_the_studio_403(client, viewer):
    client.force_login(viewer)
    response = client.get(reverse("flows:flow-new"))
    assert response.status_code == 403
    body = response.content.decode()
    assert "You may not do that" in body
    assert f'href="{reverse("flows:home")}"' in body


def test_form_without_csrf_token_gets_the_studio_page(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(reverse("logout"))
    assert response.status_code == 403
    assert "The form could not be sent" in response.content.decode()


def test_server_error_page_renders_without_any_context():
    handler = get_resolver().resolve_error_handler(500)
    response = handler(RequestFactory().get("/flows/"))
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong on our side" in body
    assert f'href="{reverse("flows:home")}"' in body


@pytest.mark.parametrize(
    "path", ["/api/v1/no-such-endpoint", "/v1/no-such-endpoint", "/mcp/no-such-endpoint"]
)
def test_api_urls_still_answer_json_errors(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert json.loads(response.content)["error"]["code"] == "not_found"


def test_api_object_not_found_keeps_its_own_json(client, api_key):
    response = client.get(
        "/api/v1/runs/00000000-0000-0000-0000-000000000000",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert "error" in json.loads(response.content)


def test_api_server_error_is_json():
    handler = get_resolver().resolve_error_handler(500)
    response = handler(RequestFactory().get("/v1/chat/completions"))
    assert response.status_code == 500
    assert json.loads(response.content)["error"]["type"] == "server_error"
