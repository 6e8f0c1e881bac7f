"""Logins are throttled against brute force, and production settings pass Django's deploy check."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD


def _login(client: Client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_repeated_failures_lock_the_account_from_that_address(owner, viewer):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "olive", "wrong").status_code == 200  # the form, with an error
    locked = _login(client, "olive", "wrong")
    assert locked.status_code == 429
    # Even the right password is refused while locked, and no session is made.
    response = _login(client, "olive", PASSWORD)
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert "_auth_user_id" not in client.session
    # Another account from the same address is not affected.
    assert _login(Client(), "victor", PASSWORD).status_code == 302


def test_a_good_login_resets_the_count(owner):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "olive", "wrong")
    assert _login(client, "olive", PASSWORD).status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(Client(), "olive", "wrong").status_code == 200


def test_one_address_spraying_a_password_over_many_accounts_is_locked_out(owner, viewer, settings):
    """Each username fails once, so the per-account limit never trips; the address's does."""
    settings.STUDIO_LOGIN_ADDRESS_FAILURE_LIMIT = 8
    sprayer = Client(REMOTE_ADDR="198.51.100.7")
    usernames = ["victor"] + [
        f"user{n}" for n in range(settings.STUDIO_LOGIN_ADDRESS_FAILURE_LIMIT)
    ]
    answers = [_login(sprayer, name, "Spring2026!").status_code for name in usernames]
    assert answers[: settings.STUDIO_LOGIN_ADDRESS_FAILURE_LIMIT - 1] == [200] * (
        settings.STUDIO_LOGIN_ADDRESS_FAILURE_LIMIT - 1
    )
    assert answers[-1] == 429
    # From that address even a right password is refused, and no session is made...
    response = _login(sprayer, "olive", PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in sprayer.session
    # ...while the same account logs in from another address.
    assert _login(Client(REMOTE_ADDR="203.0.113.9"), "olive", PASSWORD).status_code == 302


def test_a_good_login_does_not_clear_an_addresss_failures_on_other_accounts(owner, settings):
    settings.STUDIO_LOGIN_ADDRESS_FAILURE_LIMIT = 6
    sprayer = Client(REMOTE_ADDR="198.51.100.7")
    for n in range(settings.STUDIO_LOGIN_ADDRESS_FAILURE_LIMIT - 1):
        assert _login(sprayer, f"user{n}", "Spring2026!").status_code == 200
    assert _login(sprayer, "olive", PASSWORD).status_code == 302  # the attacker's own account
    assert _login(Client(REMOTE_ADDR="198.51.100.7"), "user99", "x").status_code == 429


# Servers named, never reached (the check connects to none): without them the settings would
# start an embedded PostgreSQL under tmp_path, left running after the test.
NO_SERVERS = {
    "DATABASE_URL": "postgres://studio:pw@127.0.0.1:9/studio",
    "REDIS_URL": "redis://127.0.0.1:9/0",
}


def test_production_settings_pass_the_deploy_check(tmp_path):
    env = {
        **os.environ,
        "STUDIO_HTTPS": "true",
        "STUDIO_DEBUG": "false",
        "SECRET_KEY": "k3-" + "x9Q#pL2v" * 8,
        "ALLOWED_HOSTS": "studio.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://studio.example.com",
        "STUDIO_VAR_DIR": str(tmp_path),
        **NO_SERVERS,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_embedded_default_is_not_silently_production(tmp_path):
    """Without STUDIO_HTTPS the deploy check names what is missing (cookies over plain http)."""
    env = {**os.environ, "STUDIO_VAR_DIR": str(tmp_path), **NO_SERVERS}
    env.pop("STUDIO_HTTPS", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE" in result.stdout + result.stderr
