"""Foreign keys to the tenancy follow its models into the ``workspaces`` app. State only:
PostgreSQL's constraints follow the renamed tables by themselves."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0004_credential_allowed_hosts'),
        ('workspaces', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='credential',
                    name='workspace',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='%(class)ss', to='workspaces.workspace'),
                ),
                migrations.AlterField(
                    model_name='model',
                    name='workspace',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='models', to='workspaces.workspace'),
                ),
                migrations.AlterField(
                    model_name='prompt',
                    name='workspace',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='%(class)ss', to='workspaces.workspace'),
                ),
                migrations.AlterField(
                    model_name='route',
                    name='workspace',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='%(class)ss', to='workspaces.workspace'),
                ),
                migrations.AlterField(
                    model_name='usage',
                    name='api_key',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='usage', to='workspaces.apikey'),
                ),
                migrations.AlterField(
                    model_name='usage',
                    name='workspace',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='usage', to='workspaces.workspace'),
                ),
            ],
        ),
    ]
