"""The tenancy's models now belong to the ``workspaces`` app, which renamed their tables: this
app forgets them (state only; nothing in the database changes), once every app's foreign keys
point at ``workspaces``."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0005_workspaces_app'),
        ('flows', '0006_workspaces_app'),
        ('knowledge', '0002_workspaces_app'),
        ('studio', '0003_apikey_scopes'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='apikeygroupobjectpermission',
                    name='content_object',
                ),
                migrations.RemoveField(
                    model_name='apikeyuserobjectpermission',
                    name='content_object',
                ),
                migrations.AlterUniqueTogether(
                    name='apikeygroupobjectpermission',
                    unique_together=None,
                ),
                migrations.RemoveField(
                    model_name='apikeygroupobjectpermission',
                    name='group',
                ),
                migrations.RemoveField(
                    model_name='apikeygroupobjectpermission',
                    name='permission',
                ),
                migrations.AlterUniqueTogether(
                    name='apikeyuserobjectpermission',
                    unique_together=None,
                ),
                migrations.RemoveField(
                    model_name='apikeyuserobjectpermission',
                    name='permission',
                ),
                migrations.RemoveField(
                    model_name='apikeyuserobjectpermission',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='auditevent',
                    name='actor',
                ),
                migrations.RemoveField(
                    model_name='auditevent',
                    name='workspace',
                ),
                migrations.RemoveField(
                    model_name='invitation',
                    name='accepted_by',
                ),
                migrations.RemoveField(
                    model_name='invitation',
                    name='invited_by',
                ),
                migrations.RemoveField(
                    model_name='invitation',
                    name='workspace',
                ),
                migrations.RemoveField(
                    model_name='membership',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='membership',
                    name='workspace',
                ),
                migrations.RemoveField(
                    model_name='team',
                    name='group',
                ),
                migrations.RemoveField(
                    model_name='team',
                    name='workspace',
                ),
                migrations.DeleteModel(
                    name='ApiKey',
                ),
                migrations.DeleteModel(
                    name='ApiKeyGroupObjectPermission',
                ),
                migrations.DeleteModel(
                    name='ApiKeyUserObjectPermission',
                ),
                migrations.DeleteModel(
                    name='AuditEvent',
                ),
                migrations.DeleteModel(
                    name='Invitation',
                ),
                migrations.DeleteModel(
                    name='Membership',
                ),
                migrations.DeleteModel(
                    name='Team',
                ),
                migrations.DeleteModel(
                    name='Workspace',
                ),
            ],
        ),
    ]
