"""The tenancy's models, moved here from the ``studio`` app with their rows: the state takes
them over from ``studio`` (whose next migration forgets them), the tables are renamed, and the
content types follow, so permissions and django-guardian grants keep pointing at them."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


MODELS = [
    "workspace",
    "membership",
    "team",
    "invitation",
    "apikey",
    "apikeyuserobjectpermission",
    "apikeygroupobjectpermission",
    "auditevent",
]
TABLES = MODELS


def _move_content_types(apps, source: str, target: str) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if not content_type.objects.filter(app_label=target, model=model).exists():
            content_type.objects.filter(app_label=source, model=model).update(app_label=target)


def content_types_follow(apps, schema_editor) -> None:
    _move_content_types(apps, "studio", "workspaces")


def content_types_return(apps, schema_editor) -> None:
    _move_content_types(apps, "workspaces", "studio")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        # Every migration that names the tables under their old names runs first.
        ("studio", "0003_apikey_scopes"),
        ("catalog", "0004_credential_allowed_hosts"),
        ("flows", "0005_run_tree"),
        ("knowledge", "0001_knowledge_bases"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Workspace",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("slug", models.SlugField(max_length=64, unique=True)),
                        ("name", models.CharField(max_length=200)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "permissions": [
                            ("manage_members", "Can invite members, change roles and manage teams"),
                            ("view_audit", "Can read and export the audit log"),
                            ("transfer_workspace", "Can transfer ownership of the workspace"),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="ApiKey",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("name", models.CharField(max_length=200)),
                        ("prefix", models.CharField(max_length=16, unique=True)),
                        ("secret_hash", models.CharField(max_length=64)),
                        ("host_issued", models.BooleanField(default=False)),
                        (
                            "flow_access",
                            models.CharField(
                                choices=[
                                    ("none", "No access"),
                                    ("run", "Run, and read its own runs"),
                                    ("write", "Run, and read and answer every API run"),
                                ],
                                default="none",
                                max_length=8,
                            ),
                        ),
                        ("flow_ids", models.JSONField(blank=True, null=True)),
                        (
                            "knowledge_access",
                            models.CharField(
                                choices=[
                                    ("none", "No access"),
                                    ("read", "Read and retrieve"),
                                    ("write", "Read, retrieve, add and delete documents"),
                                ],
                                default="none",
                                max_length=8,
                            ),
                        ),
                        ("knowledge_base_ids", models.JSONField(blank=True, null=True)),
                        ("expires_at", models.DateTimeField(blank=True, null=True)),
                        ("legacy", models.BooleanField(default=False)),
                        ("legacy_confirmed_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "legacy_confirmed_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "workspace",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="%(class)ss",
                                to="workspaces.workspace",
                            ),
                        ),
                    ],
                    options={
                        "permissions": [("share_apikey", "Can manage who can access the API key")],
                    },
                ),
                migrations.CreateModel(
                    name="Invitation",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("email", models.EmailField(max_length=254)),
                        (
                            "role",
                            models.CharField(
                                choices=[
                                    ("owner", "Owner"),
                                    ("admin", "Admin"),
                                    ("editor", "Editor"),
                                    ("operator", "Operator"),
                                    ("viewer", "Viewer"),
                                ],
                                default="viewer",
                                max_length=16,
                            ),
                        ),
                        ("limited", models.BooleanField(default=False)),
                        ("token_hash", models.CharField(max_length=64, unique=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("expires_at", models.DateTimeField()),
                        ("accepted_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "accepted_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "invited_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "workspace",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="%(class)ss",
                                to="workspaces.workspace",
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["-created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="ApiKeyGroupObjectPermission",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "content_object",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, to="workspaces.apikey"
                            ),
                        ),
                        (
                            "group",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, to="auth.group"
                            ),
                        ),
                        (
                            "permission",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, to="auth.permission"
                            ),
                        ),
                    ],
                    options={
                        "abstract": False,
                        "unique_together": {("group", "permission", "content_object")},
                    },
                ),
                migrations.CreateModel(
                    name="ApiKeyUserObjectPermission",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "content_object",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, to="workspaces.apikey"
                            ),
                        ),
                        (
                            "permission",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, to="auth.permission"
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "abstract": False,
                        "unique_together": {("user", "permission", "content_object")},
                    },
                ),
                migrations.CreateModel(
                    name="Team",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("name", models.CharField(max_length=100)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "group",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="team",
                                to="auth.group",
                            ),
                        ),
                        (
                            "workspace",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="%(class)ss",
                                to="workspaces.workspace",
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["name"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("workspace", "name"), name="team_name_per_workspace"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="Membership",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "role",
                            models.CharField(
                                choices=[
                                    ("owner", "Owner"),
                                    ("admin", "Admin"),
                                    ("editor", "Editor"),
                                    ("operator", "Operator"),
                                    ("viewer", "Viewer"),
                                ],
                                default="viewer",
                                max_length=16,
                            ),
                        ),
                        ("limited", models.BooleanField(default=False)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="memberships",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "workspace",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="%(class)ss",
                                to="workspaces.workspace",
                            ),
                        ),
                    ],
                    options={
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("workspace", "user"), name="membership_unique"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("actor_label", models.CharField(max_length=200)),
                        ("action", models.CharField(max_length=64)),
                        ("target_type", models.CharField(max_length=32)),
                        ("target_id", models.CharField(blank=True, max_length=64)),
                        ("target_label", models.CharField(blank=True, max_length=200)),
                        ("before", models.JSONField(blank=True, null=True)),
                        ("after", models.JSONField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "workspace",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="audit_events",
                                to="workspaces.workspace",
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["-created_at", "-id"],
                        "indexes": [
                            models.Index(
                                fields=["workspace", "-created_at"], name="audit_workspace_time"
                            ),
                            models.Index(
                                fields=["workspace", "action"], name="audit_workspace_action"
                            ),
                        ],
                    },
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    [f"ALTER TABLE studio_{t} RENAME TO workspaces_{t}" for t in TABLES],
                    [f"ALTER TABLE workspaces_{t} RENAME TO studio_{t}" for t in TABLES],
                )
            ],
        ),
        migrations.RunPython(content_types_follow, content_types_return),
    ]
