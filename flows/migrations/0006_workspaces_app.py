"""Foreign keys to the tenancy follow its models into the ``workspaces`` app. State only:
PostgreSQL's constraints follow the renamed tables by themselves."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('flows', '0005_run_tree'),
        ('workspaces', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='flow',
                    name='workspace',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='%(class)ss', to='workspaces.workspace'),
                ),
                migrations.AlterField(
                    model_name='run',
                    name='api_key',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='runs', to='workspaces.apikey'),
                ),
                migrations.AlterField(
                    model_name='run',
                    name='workspace',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='%(class)ss', to='workspaces.workspace'),
                ),
            ],
        ),
    ]
