"""Foreign keys to the tenancy follow its models into the ``workspaces`` app. State only:
PostgreSQL's constraints follow the renamed tables by themselves."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('knowledge', '0001_knowledge_bases'),
        ('workspaces', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='embeddingcache',
                    name='workspace',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to='workspaces.workspace'),
                ),
                migrations.AlterField(
                    model_name='knowledgebase',
                    name='workspace',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='%(class)ss', to='workspaces.workspace'),
                ),
            ],
        ),
    ]
