"""An index on Usage.run_id: the runs list reads a page of runs' calls by their run ids."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built concurrently: the usage table is the largest, and a plain CREATE INDEX would hold
    # back every model call's usage row until it finished.
    atomic = False

    dependencies = [
        ("catalog", "0006_usage_agent_slug"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="usage",
            index=models.Index(fields=["run_id"], name="usage_run"),
        ),
    ]
