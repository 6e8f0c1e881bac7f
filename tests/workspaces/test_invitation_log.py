"""An invitation's token never reaches the log: invite and join through a real daphne (access log
on, mail on the console backend, as a studio without SMTP runs) and read what it wrote."""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from studio import launch
from tests.conftest import PASSWORD
from workspaces.models import Membership


@pytest.fixture(scope="module")
def logged_server(process_env, tmp_path_factory):
    """A daphne of its own whose output (access log, Django's log, console mail) goes to a file,
    unbuffered so that the test reads all of it."""
    port = launch.free_port()
    path = tmp_path_factory.mktemp("logged-web") / "web.log"
    with open(path, "w") as log:
        process = launch.start(
            launch.web_command(port),
            {**process_env, "PYTHONUNBUFFERED": "1", "EMAIL_HOST": ""},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        launch.wait_for_port(port, process=process)
        yield f"http://127.0.0.1:{port}", path
        launch.stop(process)


def _csrf(response: httpx.Response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text).group(1)


def test_an_invitation_token_never_reaches_the_log(logged_server, transactional_db, make_member):
    base, log_path = logged_server
    admin = make_member("admin", username="ada")
    signed_in = Client()
    signed_in.force_login(admin)  # a real session row, which daphne reads
    with httpx.Client(
        base_url=base, timeout=60, cookies={"sessionid": signed_in.cookies["sessionid"].value}
    ) as ada:
        page = ada.get(reverse("workspaces:member-list"))
        invited = ada.post(
            reverse("workspaces:member-invite"),
            data={"who": "nina@example.com", "role": "viewer", "csrfmiddlewaretoken": _csrf(page)},
        )
    link = re.search(r'id="invitation-link">([^<]+)<', invited.text).group(1)
    path, _, token = link.removeprefix("http://testserver").partition("#")
    path = httpx.URL(path).path
    assert len(token) > 30

    with httpx.Client(base_url=base, timeout=60, follow_redirects=True) as nina:
        opener = nina.get(path)  # a browser never sends the fragment
        joining = nina.post(path, data={"token": token, "csrfmiddlewaretoken": _csrf(opener)})
        assert "Join Acme" in joining.text
        nina.post(
            path,
            data={
                "username": "nina",
                "password1": PASSWORD,
                "password2": PASSWORD,
                "csrfmiddlewaretoken": _csrf(joining),
            },
        )
        # A second try with the used token: refused (and Django logs the 404's path).
        again = nina.post(path, data={"token": token, "csrfmiddlewaretoken": _csrf(opener)})
        assert again.status_code == 404
    nina_user = get_user_model().objects.get(username="nina")
    assert Membership.objects.filter(user=nina_user).exists()

    log = log_path.read_text()
    assert f"POST {path}" in log  # the access log is there, and names the page
    assert token not in log
