"""API keys: shown once, stored hashed, made by `manage.py apikey create`."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from studio.access import authenticate_api_key
from studio.models import ApiKey
from studio.services import api_key_create, api_key_revoke


def test_the_command_makes_a_key_for_the_demo_workspace_and_prints_only_it(db):
    from flows.demo import demo_seed

    demo_seed()
    out = io.StringIO()
    call_command("apikey", "create", stdout=out)
    key = out.getvalue().strip()
    assert key.startswith("sk-studio-") and "\n" not in key
    stored = ApiKey.objects.get()
    assert stored.workspace.slug == "demo"
    assert key.split(".", 1)[1] not in stored.secret_hash
    assert authenticate_api_key(f"Bearer {key}") == stored


def test_the_command_refuses_an_unknown_workspace(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no workspace 'nope'"):
        call_command("apikey", "create", "--workspace", "nope")


def test_keys_are_hashed_and_revocable(workspace):
    api_key, key = api_key_create(workspace=workspace, name="ci")
    assert key not in str(ApiKey.objects.filter(id=api_key.id).values().get())
    assert authenticate_api_key(f"Bearer {key}") == api_key
    assert authenticate_api_key(f"Bearer {key}x") is None
    assert authenticate_api_key(key) is None  # no "Bearer "
    api_key_revoke(api_key=api_key)
    assert authenticate_api_key(f"Bearer {key}") is None
