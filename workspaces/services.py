"""Writes of workspaces, members, teams, invitations, users and API keys. Each change is audited
in its own transaction; who may make it is checked by the caller through ``studio.access``, and
the rules that hold whoever calls (an owner stays, only owners touch admins) are checked here."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from studio.roles import UNLIMITED_ROLES
from workspaces import notify
from workspaces.audit import audit_record, snapshot
from workspaces.models import (
    ApiKey,
    FlowAccess,
    Invitation,
    KnowledgeAccess,
    Membership,
    Role,
    Team,
    Workspace,
    hash_token,
)
from workspaces.quotas import limits_clean

MEMBER_FIELDS = ("user", "role", "limited")
CONSOLE_MAIL = "django.core.mail.backends.console.EmailBackend"


def workspace_create(*, slug: str, name: str, owner=None) -> Workspace:
    with transaction.atomic():
        workspace = Workspace.objects.create(slug=slug, name=name)
        audit_record(
            workspace=workspace,
            actor=owner,
            action="workspace.create",
            target=workspace,
            after=snapshot(workspace, ("slug", "name")),
        )
        if owner is not None:
            member_add(workspace=workspace, user=owner, role=Role.OWNER, actor=owner)
    return workspace


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValidationError(f"{role!r} is not a role.") from None


def member_add(
    *, workspace: Workspace, user, role: str, limited: bool = False, actor=None
) -> Membership:
    """Add ``user`` to ``workspace`` (or set their role if they are in it already)."""
    role = _role(role)
    with transaction.atomic():
        existing = Membership.objects.filter(workspace=workspace, user=user).first()
        before = snapshot(existing, MEMBER_FIELDS)
        membership, _ = Membership.objects.update_or_create(
            workspace=workspace,
            user=user,
            defaults={"role": role, "limited": limited and role not in UNLIMITED_ROLES},
        )
        audit_record(
            workspace=workspace,
            actor=actor,
            action="member.add" if existing is None else "member.change",
            target=membership,
            target_label=user.get_username(),
            before=before,
            after=snapshot(membership, MEMBER_FIELDS),
        )
    return membership


def member_change(*, membership: Membership, role: str, limited: bool, actor) -> Membership:
    """Change a member's role. The owner's role changes only by a transfer; admins are made
    and unmade by the owner."""
    role = _role(role)
    if membership.role == Role.OWNER or role == Role.OWNER:
        raise ValidationError("Ownership changes only by a transfer.")
    if Role.ADMIN in (membership.role, role) and not _is_owner(actor, membership.workspace_id):
        raise ValidationError("Only the workspace's owner can make or change an admin.")
    with transaction.atomic():
        before = snapshot(membership, MEMBER_FIELDS)
        membership.role = role
        membership.limited = limited and role not in UNLIMITED_ROLES
        membership.save(update_fields=["role", "limited"])
        audit_record(
            workspace=membership.workspace_id,
            actor=actor,
            action="member.change",
            target=membership,
            target_label=membership.user.get_username(),
            before=before,
            after=snapshot(membership, MEMBER_FIELDS),
        )
        notify.access_changed([membership.user_id])
    return membership


def _is_owner(user, workspace_id: int) -> bool:
    return (
        user is not None
        and Membership.objects.filter(
            workspace_id=workspace_id, user_id=user.pk, role=Role.OWNER
        ).exists()
    )


def member_remove(*, membership: Membership, actor) -> None:
    """Remove a member, their grants on the workspace's objects and their team places."""
    from workspaces.sharing import grants_remove_for_user

    if membership.role == Role.OWNER:
        raise ValidationError("The owner cannot be removed; transfer ownership first.")
    if membership.role == Role.ADMIN and not _is_owner(actor, membership.workspace_id):
        raise ValidationError("Only the workspace's owner can remove an admin.")
    user, membership_id = membership.user, membership.pk
    with transaction.atomic():
        before = snapshot(membership, MEMBER_FIELDS)
        grants_remove_for_user(workspace_id=membership.workspace_id, user=user)
        for team in Team.objects.filter(workspace_id=membership.workspace_id, group__user=user):
            team.group.user_set.remove(user)
        membership.delete()
        audit_record(
            workspace=membership.workspace_id,
            actor=actor,
            action="member.remove",
            target_type="membership",
            target_id=str(membership_id),
            target_label=user.get_username(),
            before=before,
        )
        notify.access_changed([user.pk])


def workspace_transfer(*, workspace: Workspace, to_user, actor) -> Membership:
    """Make ``to_user`` (a member) the owner; the previous owner becomes an admin."""
    with transaction.atomic():
        members = Membership.objects.select_for_update().filter(workspace=workspace)
        current = members.filter(role=Role.OWNER).first()
        target = members.filter(user=to_user).first()
        if target is None:
            raise ValidationError("Ownership can only go to a member of the workspace.")
        if current is not None and current.user_id == to_user.pk:
            raise ValidationError(f"{to_user.get_username()} already owns this workspace.")
        before = {"owner": current.user.get_username() if current else None}
        if current is not None:
            current.role = Role.ADMIN
            current.save(update_fields=["role"])
        target.role, target.limited = Role.OWNER, False
        target.save(update_fields=["role", "limited"])
        audit_record(
            workspace=workspace,
            actor=actor,
            action="workspace.transfer",
            target=workspace,
            before=before,
            after={"owner": to_user.get_username()},
        )
        notify.access_changed([m.user_id for m in (current, target) if m is not None])
    return target


# --- users ----------------------------------------------------------------------------------


def _account_memberships(*, user, actor, verb: str) -> list[Membership]:
    """``user``'s memberships, if ``actor`` may change their account: a superuser may; anyone
    else only an account they could remove from every workspace it belongs to (they manage
    members there, it owns none, and it is an admin only where ``actor`` is the owner), and
    never a superuser's or a staff account. An account spans workspaces: one tenant's admin
    must not lock another tenant's admin out."""
    from workspaces.access import workspace_perms

    if user.pk == actor.pk:
        raise ValidationError(f"You cannot {verb} your own account.")
    memberships = list(Membership.objects.filter(user=user).select_related("workspace"))
    if not actor.is_superuser:
        if user.is_superuser or user.is_staff:
            raise ValidationError(
                f"{user.get_username()} administers the studio: only a superuser can {verb} "
                "that account; remove them from this workspace instead."
            )
        if any(m.role == Role.OWNER for m in memberships):
            raise ValidationError(f"The owner of a workspace cannot be {verb}d.")
        for m in memberships:
            if m.role == Role.ADMIN and not _is_owner(actor, m.workspace_id):
                raise ValidationError(
                    f"{user.get_username()} is an admin of {m.workspace.name}: only its owner "
                    f"can {verb} the account."
                )
            if "workspaces.manage_members" not in workspace_perms(actor, m.workspace_id):
                raise ValidationError(
                    f"{user.get_username()} is also a member of {m.workspace.name}, "
                    "where you do not manage members; remove them from this workspace instead."
                )
    return memberships


def _account_set_active(*, user, actor, active: bool) -> None:
    verb = "reactivate" if active else "deactivate"
    memberships = _account_memberships(user=user, actor=actor, verb=verb)
    with transaction.atomic():
        user.is_active = active
        user.save(update_fields=["is_active"])
        for m in memberships or [None]:
            audit_record(
                workspace=m.workspace_id if m else None,
                actor=actor,
                action=f"user.{verb}",
                target=user,
                target_label=user.get_username(),
                before={"is_active": not active},
                after={"is_active": active},
            )
        if not active:
            sessions_end(user=user)
            notify.access_changed([user.pk])


def user_deactivate(*, user, actor) -> None:
    """Deactivate an account: its sessions are deleted and its open sockets closed at once."""
    _account_set_active(user=user, actor=actor, active=False)


def user_reactivate(*, user, actor) -> None:
    _account_set_active(user=user, actor=actor, active=True)


def sessions_end(*, user) -> int:
    """Delete every session of ``user``. Sessions are signed blobs, so each live one is read;
    the authentication backend also refuses inactive users on their next request."""
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.get_decoded().get("_auth_user_id") == str(user.pk):
            session.delete()
            ended += 1
    return ended


# --- teams ----------------------------------------------------------------------------------


def team_create(*, workspace: Workspace, name: str, actor) -> Team:
    name = name.strip()
    if not name:
        raise ValidationError("A team needs a name.")
    if Team.objects.filter(workspace=workspace, name=name).exists():
        raise ValidationError(f"There is already a team named {name!r}.")
    with transaction.atomic():
        group = Group.objects.create(name=f"workspace-{workspace.id}:{name}")
        team = Team.objects.create(workspace=workspace, name=name, group=group)
        audit_record(
            workspace=workspace,
            actor=actor,
            action="team.create",
            target=team,
            after={"name": name},
        )
    return team


def team_delete(*, team: Team, actor) -> None:
    members = list(team.group.user_set.values_list("id", flat=True))
    with transaction.atomic():
        audit_record(
            workspace=team.workspace_id,
            actor=actor,
            action="team.delete",
            target=team,
            before={"name": team.name, "members": len(members)},
        )
        team.group.delete()  # the team and its grants go with its group
        notify.access_changed(members)


def team_member_add(*, team: Team, user, actor) -> None:
    if not Membership.objects.filter(workspace_id=team.workspace_id, user=user).exists():
        raise ValidationError(f"{user.get_username()} is not a member of this workspace.")
    with transaction.atomic():
        team.group.user_set.add(user)
        audit_record(
            workspace=team.workspace_id,
            actor=actor,
            action="team.member_add",
            target=team,
            after={"user": user.get_username()},
        )


def team_member_remove(*, team: Team, user, actor) -> None:
    with transaction.atomic():
        team.group.user_set.remove(user)
        audit_record(
            workspace=team.workspace_id,
            actor=actor,
            action="team.member_remove",
            target=team,
            before={"user": user.get_username()},
        )
        notify.access_changed([user.pk])


# --- invitations ----------------------------------------------------------------------------


def invitation_create(
    *, workspace: Workspace, email: str, role: str, limited: bool = False, actor, accept_url
) -> tuple[Invitation, str]:
    """An invitation for ``email``; returns it and the token (never stored) and mails the link
    ``accept_url(token)``, unless mail goes to the console backend: that writes to the log, and
    the link is a bearer secret (the inviting admin copies it from the page instead)."""
    role = _role(role)
    if role == Role.OWNER:
        raise ValidationError("Invite as admin and transfer ownership afterwards.")
    if role == Role.ADMIN and not _is_owner(actor, workspace.id):
        raise ValidationError("Only the workspace's owner can invite an admin.")
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            workspace=workspace,
            email=email,
            role=role,
            limited=limited and role not in UNLIMITED_ROLES,
            token_hash=hash_token(token),
            invited_by=actor,
            expires_at=timezone.now() + timedelta(days=settings.STUDIO_INVITATION_DAYS),
        )
        audit_record(
            workspace=workspace,
            actor=actor,
            action="member.invite",
            target=invitation,
            target_label=email,
            after={"email": email, "role": role, "limited": invitation.limited},
        )
    if settings.EMAIL_BACKEND == CONSOLE_MAIL:
        return invitation, token
    link = accept_url(token)
    send_mail(
        subject=f"You are invited to {workspace.name}",
        message=(
            f"{actor.get_username()} invited you to the workspace {workspace.name} as {role}.\n"
            f"Accept within {settings.STUDIO_INVITATION_DAYS} days: {link}\n"
        ),
        from_email=None,
        recipient_list=[email],
        fail_silently=True,
    )
    return invitation, token


def invitation_addressed_to(invitation: Invitation, user) -> bool:
    """Whether ``user``'s account has the address ``invitation`` was sent to. The studio does not
    verify addresses by mail: an account gets one from the invitation it was created by (the
    link proves the mailbox), or from a superuser; members cannot change theirs."""
    return (user.email or "").strip().casefold() == invitation.email.strip().casefold()


def invitation_for_token(token: str) -> Invitation | None:
    """The open, unexpired invitation a link's token names, or None."""
    return (
        Invitation.objects.select_related("workspace")
        .filter(
            token_hash=hash_token(token), accepted_at__isnull=True, expires_at__gt=timezone.now()
        )
        .first()
    )


def invitation_accept(*, invitation: Invitation, user) -> Membership:
    """``user`` joins by ``invitation``; ValidationError unless it was sent to their address,
    so that a leaked link lets nobody else in."""
    if not invitation_addressed_to(invitation, user):
        raise ValidationError(
            f"This invitation was sent to {invitation.email}, not to the address of "
            f"{user.get_username()}: sign in with that account, or sign out and create one."
        )
    with transaction.atomic():
        claimed = Invitation.objects.filter(id=invitation.id, accepted_at__isnull=True).update(
            accepted_at=timezone.now(), accepted_by=user
        )
        if not claimed:
            raise ValidationError("This invitation has already been used.")
        existing = Membership.objects.filter(workspace=invitation.workspace, user=user).first()
        if existing is not None:
            return existing  # already a member: keep the role they have
        return member_add(
            workspace=invitation.workspace,
            user=user,
            role=invitation.role,
            limited=invitation.limited,
            actor=user,
        )


def invitation_signup(*, invitation: Invitation, username: str, password: str) -> Membership:
    """Create the invited person's account and accept; they then log in (no auto-login)."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(
            username=username, email=invitation.email, password=password
        )
        return invitation_accept(invitation=invitation, user=user)


# --- API keys -------------------------------------------------------------------------------

KEY_FIELDS = (
    "name",
    "prefix",
    "revoked_at",
    "flow_access",
    "flow_ids",
    "knowledge_access",
    "knowledge_base_ids",
    "expires_at",
    "legacy",
    "legacy_confirmed_at",
    "requests_per_minute",
    "tokens_per_day",
)


@dataclass(frozen=True)
class KeyScopes:
    """What a key may reach: an access level per kind, each optionally narrowed to chosen
    objects (ids; None: all of the workspace's), and when it stops working."""

    flow_access: str = FlowAccess.NONE
    flow_ids: list[int] | None = None
    knowledge_access: str = KnowledgeAccess.NONE
    knowledge_base_ids: list[int] | None = None
    expires_at: datetime | None = None


# For keys made on the host (the command, code) without a member behind them.
FULL_ACCESS = KeyScopes(flow_access=FlowAccess.WRITE, knowledge_access=KnowledgeAccess.WRITE)


def _key_scopes_clean(*, workspace: Workspace, scopes: KeyScopes, user) -> dict:
    """The key fields for ``scopes``; ValidationError for an unknown level, a past expiry, or
    an object that is not one of the workspace's that ``user`` may see (a key never names what
    its maker cannot)."""
    if scopes.flow_access not in FlowAccess.values:
        raise ValidationError(f"{scopes.flow_access!r} is not a flow access level.")
    if scopes.knowledge_access not in KnowledgeAccess.values:
        raise ValidationError(f"{scopes.knowledge_access!r} is not a knowledge access level.")
    if scopes.expires_at is not None and scopes.expires_at <= timezone.now():
        raise ValidationError("A key's expiry must lie in the future.")
    chosen = {
        "flow_ids": _key_objects(workspace, "flows.Flow", scopes.flow_ids, user),
        "knowledge_base_ids": _key_objects(
            workspace, "knowledge.KnowledgeBase", scopes.knowledge_base_ids, user
        ),
    }
    return {
        "flow_access": scopes.flow_access,
        "knowledge_access": scopes.knowledge_access,
        "expires_at": scopes.expires_at,
        **chosen,
    }


def _key_objects(workspace: Workspace, label: str, ids: list[int] | None, user):
    """``ids`` sorted, if all name objects of ``label`` in ``workspace`` that ``user`` sees."""
    from django.apps import apps

    from studio.access import scope

    if ids is None:
        return None
    model = apps.get_model(label)
    visible = model.objects.filter(workspace=workspace)
    if user is not None:
        visible = scope(user, workspace.id, visible, "view")
    ids = sorted(set(ids))
    if visible.filter(pk__in=ids).count() != len(ids):
        noun = model._meta.verbose_name_plural
        raise ValidationError(f"Choose {noun} of this workspace that you may see.")
    return ids


def api_key_create(
    *,
    workspace: Workspace,
    name: str,
    user=None,
    scopes: KeyScopes = FULL_ACCESS,
    requests_per_minute: int | None = None,
    tokens_per_day: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key for ``workspace``. Returns the row and the key, which is never stored.

    A key made by ``user`` acts for them: it never does more than they may do at the time.
    One made without a user is the host's (``manage.py apikey``), bounded by its scopes only.
    Its limits (None: none; ``workspaces.quotas``) are checked as the scopes are.
    """
    fields = _key_scopes_clean(workspace=workspace, scopes=scopes, user=user)
    fields |= limits_clean(requests_per_minute, tokens_per_day)
    key, prefix, secret_hash = ApiKey.generate()
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            workspace=workspace,
            name=name,
            prefix=prefix,
            secret_hash=secret_hash,
            created_by=user,
            host_issued=user is None,
            **fields,
        )
        audit_record(
            workspace=workspace,
            actor=user,
            action="key.create",
            target=api_key,
            after=snapshot(api_key, KEY_FIELDS),
        )
    return api_key, key


def _api_key_change(*, api_key: ApiKey, user, action: str, **fields: Any) -> ApiKey:
    """Set ``fields`` on a key and audit the change as ``action``, in one transaction."""
    with transaction.atomic():
        before = snapshot(api_key, KEY_FIELDS)
        for name, value in fields.items():
            setattr(api_key, name, value)
        api_key.save(update_fields=list(fields))
        audit_record(
            workspace=api_key.workspace_id,
            actor=user,
            action=action,
            target=api_key,
            before=before,
            after=snapshot(api_key, KEY_FIELDS),
        )
    return api_key


def api_key_scopes_update(*, api_key: ApiKey, scopes: KeyScopes, user) -> ApiKey:
    """Re-scope a key; a legacy key re-scoped is an ordinary key from then on."""
    fields = _key_scopes_clean(workspace=api_key.workspace, scopes=scopes, user=user)
    return _api_key_change(api_key=api_key, user=user, action="key.scope", legacy=False, **fields)


def api_key_legacy_confirm(*, api_key: ApiKey, user) -> ApiKey:
    """An admin's word that a key made before scopes keeps the whole workspace, as before."""
    if not api_key.legacy:
        raise ValidationError("Only a key made before scopes needs confirming.")
    if api_key.legacy_confirmed_at is not None:
        return api_key
    return _api_key_change(
        api_key=api_key,
        user=user,
        action="key.confirm_legacy",
        legacy_confirmed_at=timezone.now(),
        legacy_confirmed_by=user,
    )


def api_key_revoke(*, api_key: ApiKey, user=None) -> ApiKey:
    if api_key.revoked_at is not None:
        return api_key
    return _api_key_change(
        api_key=api_key, user=user, action="key.revoke", revoked_at=timezone.now()
    )
