"""Password reset by email: the link sets a new password once, expires, answers the same for
unknown addresses, and requests are throttled per address and per email."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.test import Client
from django.urls import reverse

from studio import redis_client
from studio.throttle import PREFIX
from tests.conftest import PASSWORD

NEW_PASSWORD = "a-new-horse-staple-7"
LINK = re.compile(r"https?://[^/\s]+(/accounts/reset/[^/\s]+/[^/\s]+/)")


@pytest.fixture(autouse=True)
def fresh_throttle():
    """The counters live in Redis, beyond one test's database."""
    client = redis_client.client()
    for key in client.scan_iter(f"{PREFIX}password-reset:*"):
        client.delete(key)


def _ask(client: Client, email: str):
    return client.post(reverse("password_reset"), {"email": email})


def _link(message) -> str:
    match = LINK.search(message.body)
    assert match, message.body
    return match.group(1)


def _log_in(password: str) -> int:
    return Client().post(reverse("login"), {"username": "olive", "password": password}).status_code


def test_the_login_page_offers_a_reset(db):
    response = Client().get(reverse("login"))
    assert reverse("password_reset").encode() in response.content
    assert b"Forgot your password?" in response.content


def test_a_link_by_email_sets_a_new_password_once(owner, settings):
    client = Client()
    response = _ask(client, "olive@example.com")
    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_done")
    (message,) = mail.outbox
    assert message.to == ["olive@example.com"]
    assert f"within {settings.PASSWORD_RESET_TIMEOUT // 60} minutes" in message.body
    link = _link(message)

    # Django trades the token for a session and a token-free address before showing the form.
    opened = client.get(link)
    assert opened.status_code == 302
    form = client.get(opened["Location"])
    assert form.status_code == 200
    assert b"Set a new password" in form.content
    done = client.post(
        opened["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert done.status_code == 302
    assert done["Location"] == reverse("password_reset_complete")

    assert _log_in(NEW_PASSWORD) == 302
    assert _log_in(PASSWORD) == 200  # the old one no longer works
    # The link was for one use.
    again = Client().get(link)
    assert again.status_code == 404
    assert b"This link does not work" in again.content


def test_a_link_expires_after_the_reset_timeout(owner, settings, monkeypatch):
    _ask(Client(), "olive@example.com")
    link = _link(mail.outbox[0])
    issued = default_token_generator._now()

    def later(seconds: int) -> None:
        monkeypatch.setattr(
            default_token_generator, "_now", lambda: issued + timedelta(seconds=seconds)
        )

    later(settings.PASSWORD_RESET_TIMEOUT - 60)
    assert Client().get(link).status_code == 302  # still good a minute before
    later(settings.PASSWORD_RESET_TIMEOUT + 2)
    expired = Client().get(link)
    assert expired.status_code == 404
    assert b"This link does not work" in expired.content
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


def test_an_unknown_email_gets_the_same_answer(owner):
    known = _ask(Client(), "olive@example.com")
    unknown = _ask(Client(), "nobody@example.com")
    assert (unknown.status_code, unknown["Location"]) == (known.status_code, known["Location"])
    assert len(mail.outbox) == 1  # only the account's address got a mail
    page = Client().get(unknown["Location"])
    assert b"If an account has that address" in page.content


def test_requests_for_one_email_are_throttled(owner, settings):
    limit = settings.STUDIO_PASSWORD_RESET_PER_HOUR
    for n in range(limit):  # from different addresses: the email's own count
        assert (
            _ask(Client(REMOTE_ADDR=f"198.51.100.{n + 1}"), "olive@example.com").status_code == 302
        )
    refused = _ask(Client(REMOTE_ADDR="203.0.113.5"), "OLIVE@example.com")
    assert refused.status_code == 429
    assert b"Too many reset requests" in refused.content
    assert len(mail.outbox) == limit


def test_requests_from_one_address_are_throttled(owner, settings):
    limit = settings.STUDIO_PASSWORD_RESET_PER_HOUR
    prober = Client(REMOTE_ADDR="198.51.100.7")
    for n in range(limit):
        assert _ask(prober, f"someone{n}@example.com").status_code == 302
    assert _ask(prober, "olive@example.com").status_code == 429
    assert mail.outbox == []
    # Another address still may.
    assert _ask(Client(REMOTE_ADDR="203.0.113.5"), "olive@example.com").status_code == 302
    assert len(mail.outbox) == 1
