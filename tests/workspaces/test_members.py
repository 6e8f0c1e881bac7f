"""Admins manage members: invite (existing users at once, newcomers by link), change roles,
remove, transfer ownership, deactivate (sessions end at once)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client
from django.urls import reverse
from pytest_django.asserts import assertContains, assertRedirects

from catalog.services import model_create
from flows.models import FlowUserObjectPermission
from tests.conftest import PASSWORD
from workspaces.models import Invitation, Membership
from workspaces.services import team_create, team_member_add
from workspaces.sharing import object_grant

User = get_user_model()


@pytest.fixture
def admin_user(make_member):
    return make_member("admin", username="ada")


def _invite(client, email: str, role: str = "viewer") -> str:
    """The link the members page shows after inviting ``email``."""
    response = client.post(reverse("workspaces:member-invite"), {"who": email, "role": role})
    assert response.status_code == 200
    return re.search(r'id="invitation-link">([^<]+)<', response.content.decode()).group(1)


def _open(client, link: str) -> str:
    """What the page's script does: send the fragment's token in the body. The join page's
    path (it carries no token)."""
    path, _, token = link.removeprefix("http://testserver").partition("#")
    assertContains(client.get(path), 'id="invitation-open"')
    assertRedirects(client.post(path, {"token": token}), path, fetch_redirect_response=False)
    return path


def test_inviting_an_existing_user_adds_them_at_once(client, admin_user, outsider, workspace):
    client.force_login(admin_user)
    response = client.post(
        reverse("workspaces:member-invite"), {"who": "oscar", "role": "editor", "limited": "on"}
    )
    assertRedirects(response, reverse("workspaces:member-list"))
    membership = Membership.objects.get(workspace=workspace, user=outsider)
    assert (membership.role, membership.limited) == ("editor", True)


def test_a_newcomer_joins_by_the_invitation_link_and_then_logs_in(client, admin_user, workspace):
    client.force_login(admin_user)
    response = client.post(
        reverse("workspaces:member-invite"), {"who": "nina@example.com", "role": "operator"}
    )
    assert response.status_code == 200
    link = re.search(r'id="invitation-link">([^<]+)<', response.content.decode()).group(1)
    assert link in mail.outbox[0].body and mail.outbox[0].to == ["nina@example.com"]
    invitation = Invitation.objects.get()
    token = link.partition("#")[2]
    assert token and token not in invitation.token_hash  # only a hash is stored

    newcomer = Client()
    path = _open(newcomer, link)
    assertContains(newcomer.get(path), "Join Acme")
    response = newcomer.post(
        path, {"username": "nina", "password1": PASSWORD, "password2": PASSWORD}
    )
    # The account exists and is a member, but nobody is logged in by the link.
    assertRedirects(response, reverse("login"))
    nina = User.objects.get(username="nina")
    assert nina.email == "nina@example.com"
    assert Membership.objects.get(workspace=workspace, user=nina).role == "operator"
    assert "_auth_user_id" not in newcomer.session
    # The link works once.
    assert newcomer.post(path, {"token": token}).status_code == 404


def test_a_weak_password_is_refused_and_the_invitation_stays_open(client, admin_user):
    client.force_login(admin_user)
    link = _invite(client, "ned@example.com")
    newcomer = Client()
    path = _open(newcomer, link)
    response = newcomer.post(path, {"username": "ned", "password1": "123", "password2": "123"})
    assert response.status_code == 400
    assert not User.objects.filter(username="ned").exists()
    assertContains(newcomer.get(path), "Join Acme")


def test_an_invite_for_nobody_is_refused(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("workspaces:member-invite"), {"who": "nobody", "role": "viewer"})
    assert response.status_code == 400
    assertContains(response, "give an email address", status_code=400)
    assert not Invitation.objects.exists()


def test_changing_a_role_and_removing_a_member(client, admin_user, viewer, workspace, owner):
    membership = Membership.objects.get(workspace=workspace, user=viewer)
    model_create(slug="echo", name="Echo", engine="echo")
    from flows.demo import assistant_graph
    from flows.services import flow_create

    flow = flow_create(
        workspace=workspace, slug="f", name="F", graph=assistant_graph("echo"), user=owner
    )
    object_grant(obj=flow, subject=viewer, level="edit", actor=owner)
    team = team_create(workspace=workspace, name="Team", actor=owner)
    team_member_add(team=team, user=viewer, actor=owner)
    client.force_login(admin_user)

    client.post(reverse("workspaces:member-change", args=[membership.id]), {"role": "editor"})
    membership.refresh_from_db()
    assert membership.role == "editor"

    client.post(reverse("workspaces:member-remove", args=[membership.id]))
    assert not Membership.objects.filter(id=membership.id).exists()
    # Leaving takes their grants and team places with them.
    assert not FlowUserObjectPermission.objects.filter(user=viewer).exists()
    assert not team.group.user_set.filter(id=viewer.id).exists()


def test_the_owner_cannot_be_removed_or_demoted(client, admin_user, owner, workspace):
    ownership = Membership.objects.get(workspace=workspace, user=owner)
    client.force_login(admin_user)
    client.post(reverse("workspaces:member-change", args=[ownership.id]), {"role": "viewer"})
    client.post(reverse("workspaces:member-remove", args=[ownership.id]))
    ownership.refresh_from_db()
    assert ownership.role == "owner"


def test_transferring_ownership(client, owner, admin_user, workspace):
    target = Membership.objects.get(workspace=workspace, user=admin_user)
    client.force_login(owner)
    response = client.post(reverse("workspaces:workspace-transfer"), {"to": target.id})
    assertRedirects(response, reverse("workspaces:member-list"))
    roles = dict(
        Membership.objects.filter(workspace=workspace).values_list("user__username", "role")
    )
    assert roles == {"ada": "owner", "olive": "admin"}


def test_a_deactivated_user_is_signed_out_at_once(admin_user, viewer, workspace):
    victim = Client()
    victim.force_login(viewer)
    assert victim.get(reverse("flows:flow-list")).status_code == 200
    admin = Client()
    admin.force_login(admin_user)

    membership = Membership.objects.get(workspace=workspace, user=viewer)
    admin.post(reverse("workspaces:member-deactivate", args=[membership.id]))

    viewer.refresh_from_db()
    assert not viewer.is_active
    response = victim.get(reverse("flows:flow-list"))
    assertRedirects(response, f"{reverse('login')}?next={reverse('flows:flow-list')}")
    user_ids = [s.get_decoded().get("_auth_user_id") for s in Session.objects.all()]
    assert str(viewer.id) not in user_ids
    # And they cannot log in again: the form comes back with an error, and no session.
    again = Client()
    response = again.post(reverse("login"), {"username": "victor", "password": PASSWORD})
    assert response.status_code == 200
    assert "_auth_user_id" not in again.session


def test_an_admin_cannot_deactivate_a_member_of_a_workspace_they_do_not_manage(
    client, admin_user, outsider, workspace
):
    from workspaces.services import member_add

    member_add(workspace=workspace, user=outsider, role="viewer")
    membership = Membership.objects.get(workspace=workspace, user=outsider)
    client.force_login(admin_user)
    client.post(reverse("workspaces:member-deactivate", args=[membership.id]))
    outsider.refresh_from_db()
    assert outsider.is_active


def test_switching_workspace(client, outsider, workspace):
    from workspaces.services import member_add

    member_add(workspace=workspace, user=outsider, role="viewer")
    client.force_login(outsider)
    assertContains(client.get(reverse("flows:flow-list")), 'name="workspace_id"')
    client.post(reverse("workspaces:workspace-switch"), {"workspace_id": workspace.id})
    assert client.session["workspace_id"] == workspace.id
    assert (
        client.post(reverse("workspaces:workspace-switch"), {"workspace_id": "nope"}).status_code
        == 404
    )


def test_an_admin_cannot_reactivate_a_member_of_a_workspace_they_do_not_manage(
    client, admin_user, outsider, workspace
):
    from workspaces.services import member_add, user_deactivate

    member_add(workspace=workspace, user=outsider, role="viewer")
    user_deactivate(user=outsider, actor=get_user_model().objects.create_superuser("root"))
    membership = Membership.objects.get(workspace=workspace, user=outsider)
    client.force_login(admin_user)
    client.post(reverse("workspaces:member-reactivate", args=[membership.id]))
    outsider.refresh_from_db()
    assert not outsider.is_active


def _deactivate(actor, target, workspace):
    """``actor`` presses "deactivate" on ``target``'s row of the members page."""
    client = Client()
    client.force_login(actor)
    membership = Membership.objects.get(workspace=workspace, user=target)
    response = client.post(
        reverse("workspaces:member-deactivate", args=[membership.id]), follow=True
    )
    target.refresh_from_db()
    return response


def test_an_admin_cannot_deactivate_a_superuser(admin_user, workspace):
    from workspaces.services import member_add

    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    member_add(workspace=workspace, user=root, role="viewer")
    response = _deactivate(admin_user, root, workspace)
    assert root.is_active
    assertContains(response, "only a superuser can deactivate that account")


def test_an_admin_cannot_deactivate_an_admin_of_another_workspace(
    admin_user, make_member, workspace
):
    """Even where the admin manages members in both workspaces: only the other workspace's
    owner may lock out its admin."""
    from workspaces.services import member_add, workspace_create

    other = workspace_create(slug="beta", name="Beta")
    member_add(workspace=other, user=admin_user, role="admin")
    bea = make_member("viewer", username="bea")
    member_add(workspace=other, user=bea, role="admin")
    response = _deactivate(admin_user, bea, workspace)
    assert bea.is_active
    assertContains(response, "bea is an admin of Beta: only its owner can deactivate")


def test_only_the_owner_deactivates_an_admin_of_their_workspace(
    admin_user, make_member, owner, workspace
):
    colleague = make_member("admin", username="cole")
    _deactivate(admin_user, colleague, workspace)
    assert colleague.is_active
    _deactivate(owner, colleague, workspace)
    assert not colleague.is_active


def test_an_invitation_is_accepted_only_by_the_address_it_was_sent_to(
    client, admin_user, outsider, workspace
):
    """A leaked link lets nobody in: a signed-in user with another address cannot join by it."""
    client.force_login(admin_user)
    link = _invite(client, "nina@example.com")
    intruder = Client()
    intruder.force_login(outsider)  # oscar@example.com
    path = _open(intruder, link)
    assertContains(intruder.get(path), "This invitation was sent to nina@example.com")
    response = intruder.post(path, follow=True)
    assertContains(response, "This invitation was sent to nina@example.com")
    assert not Membership.objects.filter(workspace=workspace, user=outsider).exists()
    assert Invitation.objects.get().accepted_at is None

    # The account that has the address (in any case) joins.
    nina = User.objects.create_user("nina", "Nina@Example.COM", PASSWORD)
    invitee = Client()
    invitee.force_login(nina)
    path = _open(invitee, link)
    assertRedirects(invitee.post(path), reverse("flows:home"), fetch_redirect_response=False)
    assert Membership.objects.get(workspace=workspace, user=nina).role == "viewer"


def test_an_invitation_is_not_mailed_through_the_console_backend(admin_user, settings, capsys):
    """The console backend writes mails to the log; an invitation link is a bearer secret."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        reverse("workspaces:member-invite"), {"who": "nina@example.com", "role": "viewer"}
    )
    assertContains(response, "No mail server is set up: send them this link yourself.")
    link = re.search(r'id="invitation-link">([^<]+)<', response.content.decode()).group(1)
    token = link.partition("#")[2]
    assert token and token not in capsys.readouterr().out
    assert not mail.outbox
