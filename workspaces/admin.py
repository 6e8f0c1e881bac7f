"""Django's admin for operators (superusers): workspaces, members, teams, keys, the audit log.

Day-to-day access management lives in the studio's own pages, which audit every change; here
the audit log is read-only and keys show only their prefix.
"""

from __future__ import annotations

from django.contrib import admin

from workspaces.models import ApiKey, AuditEvent, Invitation, Membership, Team, Workspace


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "limited"]
    list_filter = ["role", "limited", "workspace"]
    search_fields = ["user__username", "workspace__name"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace"]
    list_filter = ["workspace"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "workspace", "role", "expires_at", "accepted_at"]
    exclude = ["token_hash"]
    readonly_fields = ["accepted_at", "accepted_by"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "workspace", "created_at", "last_used_at", "revoked_at"]
    exclude = ["secret_hash"]
    # What a key may reach changes only on the keys page, where it is checked and audited.
    readonly_fields = [
        "prefix",
        "created_by",
        "last_used_at",
        "host_issued",
        "flow_access",
        "flow_ids",
        "knowledge_access",
        "knowledge_base_ids",
        "expires_at",
        "legacy",
        "legacy_confirmed_at",
        "legacy_confirmed_by",
    ]

    def has_add_permission(self, request) -> bool:
        return False  # a key is made where it can be shown once: the keys page or `apikey`


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "workspace",
        "actor_label",
        "action",
        "target_type",
        "target_label",
    ]
    list_filter = ["action", "target_type", "workspace"]
    search_fields = ["actor_label", "target_label", "action"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
