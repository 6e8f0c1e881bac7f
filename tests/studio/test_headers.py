"""Every page carries the security headers, and no page needs an inline script.

The route table is walked as in ``test_routes_access`` (every route, by the owner of the
workspace whose objects the URLs name, and signed out), so a new page is covered by
construction. The Content-Security-Policy allows scripts only from the studio's own files: an
inline ``<script>`` or ``on…=`` handler would not run, so none may be left in templates or in
what the pages render.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tests.conftest import PASSWORD
from tests.studio.test_routes_access import URL_VALUES, _url, access, all_routes
from tests.studio.test_routes_access import victim as victim  # noqa: F401 - the fixture

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
# An inline script: a <script> element without src (JSON data blocks do not run), an on…=
# event handler attribute, or a javascript: address.
# The password reset link names a user by its encoded id (with a random token: an invalid link).
VALUES = URL_VALUES | {"uidb64": lambda v, kind: urlsafe_base64_encode(force_bytes(v.owner.pk))}
INLINE_SCRIPT = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>"
    r"|<[a-z][^>]*\son[a-z]+\s*="
    r"|(?:href|action|src)\s*=\s*[\"']?\s*javascript:",
    re.IGNORECASE,
)


def _policy(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


def _problems_with_headers(response) -> list[str]:
    problems = [
        f"{name} is {response.headers.get(name)!r}, not {value!r}"
        for name, value in HEADERS.items()
        if response.headers.get(name) != value
    ]
    policy = _policy(response)
    if policy.get("script-src") != "'self'":
        problems.append(f"script-src is {policy.get('script-src')!r}")
    for directive, sources in {
        "default-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "frame-ancestors": "'none'",
        "form-action": "'self'",
    }.items():
        if policy.get(directive) != sources:
            problems.append(f"{directive} is {policy.get(directive)!r}")
    if "camera=()" not in response.headers.get("Permissions-Policy", ""):
        problems.append("no Permissions-Policy")
    return problems


def test_the_policy_runs_no_inline_script_and_reaches_its_own_websockets():
    response = Client().get("/accounts/login/")
    assert _problems_with_headers(response) == []
    policy = _policy(response)
    assert policy["connect-src"] == "'self' ws://testserver wss://testserver"
    assert "unsafe" not in policy["script-src"] + policy["default-src"]


@pytest.mark.django_db
def test_every_route_answers_with_the_security_headers(victim, settings):  # noqa: F811
    """GET on every route, signed out and as the owner of the objects the URL names: whatever
    the answer (page, redirect, 404, 405, API error), the headers are on it, and no HTML page
    carries an inline script."""
    settings.STUDIO_RUN_TIMEOUT_S = 1  # a run stream of a queued run gives up at once
    owner = Client()
    problems: list[str] = []
    pages = 0
    for route in all_routes():
        for kind in sorted(access.KINDS) if "kind" in route.params else [None]:
            kwargs = {p: VALUES[p](victim, kind) for p in route.params if p != "kind"}
            if kind is not None:
                kwargs["kind"] = kind
            url = _url(route, kwargs)
            for who, client in (("signed out", Client()), ("owner", owner)):
                if who == "owner":
                    client.force_login(victim.owner)
                response = client.get(url)
                label = f"GET {url} ({who}): {response.status_code}"
                problems += [f"{label}: {p}" for p in _problems_with_headers(response)]
                if response.streaming or "html" not in response.get("Content-Type", ""):
                    continue
                pages += 1
                if match := INLINE_SCRIPT.search(response.content.decode()):
                    problems.append(f"{label}: inline script {match.group(0)!r}")
    assert not problems, "\n".join(problems)
    assert pages > 40, pages  # the walk rendered the pages, not only redirects


@pytest.mark.django_db
def test_refusals_from_middleware_carry_the_headers_too(owner, settings):
    settings.AXES_FAILURE_LIMIT = 1
    client = Client()
    locked = client.post("/accounts/login/", {"username": "olive", "password": "wrong"})
    assert locked.status_code == 429
    assert _problems_with_headers(locked) == []
    csrf = Client(enforce_csrf_checks=True).post(
        "/accounts/login/", {"username": "olive", "password": PASSWORD}
    )
    assert csrf.status_code == 403
    assert _problems_with_headers(csrf) == []
    # Refused before XFrameOptionsMiddleware runs; frame-ancestors 'none' forbids framing.
    bad_host = Client().get("/accounts/login/", headers={"host": "evil.example"})
    assert bad_host.status_code == 400
    assert _problems_with_headers(bad_host) == ["X-Frame-Options is None, not 'DENY'"]
    assert "evil.example" not in bad_host.headers["Content-Security-Policy"]


def test_no_template_holds_an_inline_script():
    templates = Path(settings.BASE_DIR, "templates")
    found = [
        f"{path.relative_to(templates)}: {match.group(0)!r}"
        for path in sorted(templates.rglob("*.html"))
        for match in INLINE_SCRIPT.finditer(path.read_text())
    ]
    assert not found, "\n".join(found)
