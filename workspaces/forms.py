"""Forms of the workspace pages: members, invitations, teams, sharing, the audit filter."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from workspaces.models import Membership, Role, Team

# Ownership moves only by a transfer, so the owner role is never offered in a form.
ASSIGNABLE_ROLES = [(r.value, r.label) for r in Role if r != Role.OWNER]


class InviteForm(forms.Form):
    who = forms.CharField(
        max_length=254,
        label="Username or email",
        help_text="An existing user joins at once; an email address gets an invitation link.",
    )
    role = forms.ChoiceField(choices=ASSIGNABLE_ROLES, initial=Role.VIEWER)
    limited = forms.BooleanField(
        required=False, label="Only objects shared with them", help_text="Editors and below."
    )

    def clean_who(self) -> str:
        return self.cleaned_data["who"].strip()

    def existing_user(self):
        who = self.cleaned_data["who"]
        users = get_user_model().objects
        return users.filter(username=who).first() or (
            users.filter(email__iexact=who).first() if "@" in who else None
        )

    def clean(self):
        cleaned = super().clean()
        who = cleaned.get("who")
        if who and self.existing_user() is None:
            try:
                forms.EmailField().clean(who)
            except forms.ValidationError:
                self.add_error("who", f"No user named {who!r}; give an email address to invite.")
        return cleaned


class MemberChangeForm(forms.Form):
    role = forms.ChoiceField(choices=ASSIGNABLE_ROLES)
    limited = forms.BooleanField(required=False)


class TransferForm(forms.Form):
    to = forms.ModelChoiceField(queryset=Membership.objects.none(), label="New owner")

    def __init__(self, *args, workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["to"].queryset = (
            Membership.objects.filter(workspace=workspace)
            .exclude(role=Role.OWNER)
            .select_related("user")
        )
        self.fields["to"].label_from_instance = lambda m: m.user.get_username()


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100)


class TeamMemberForm(forms.Form):
    member = forms.ModelChoiceField(queryset=Membership.objects.none())

    def __init__(self, *args, workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["member"].queryset = Membership.objects.filter(
            workspace=workspace
        ).select_related("user")
        self.fields["member"].label_from_instance = lambda m: m.user.get_username()


class GrantForm(forms.Form):
    """Share an object with a member (``user:<id>``) or a team (``team:<id>``) at a level."""

    subject = forms.ChoiceField(label="Member or team")
    level = forms.ChoiceField()

    def __init__(self, *args, workspace_id: int, levels: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        members = Membership.objects.filter(workspace_id=workspace_id).select_related("user")
        teams = Team.objects.filter(workspace_id=workspace_id)
        self.fields["subject"].choices = [
            ("Members", [(f"user:{m.user_id}", m.user.get_username()) for m in members]),
            ("Teams", [(f"team:{t.id}", t.name) for t in teams]),
        ]
        self.fields["level"].choices = [(level, level.title()) for level in levels]
        self.workspace_id = workspace_id

    def subject_object(self):
        kind, _, pk = self.cleaned_data["subject"].partition(":")
        if kind == "team":
            return Team.objects.get(id=pk, workspace_id=self.workspace_id)
        return Membership.objects.get(user_id=pk, workspace_id=self.workspace_id).user


class SignupForm(UserCreationForm):
    """The account an invited person creates; their email is the invitation's."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False, max_length=64, help_text="e.g. flow.publish")
    actor = forms.CharField(required=False, max_length=200)
    target_type = forms.CharField(required=False, max_length=32, label="Object type")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
