"""The random slice (issue 15): its own partial index, the flag the queue reads before drawing
from it, and the hidden prediction recorded on a slice item's lease when it is served."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0014_random_slice_share"),
    ]

    operations = [
        migrations.AddField(
            model_name="assignment",
            name="slice_model_version_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="assignment",
            name="slice_value",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="project",
            name="random_slice_open",
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.AddIndex(
            model_name="item",
            index=models.Index(
                condition=models.Q(("is_complete", False), ("pick_kind", "random")),
                fields=["project", "id"],
                name="item_random_slice_idx",
            ),
        ),
    ]
