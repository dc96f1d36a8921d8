from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0018_annotation_idempotency_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="fetch_image_urls",
            field=models.BooleanField(
                default=False,
                help_text="Imports may name images by http(s) URL; the studio fetches them from public"
                " addresses only, with a size and a time limit.",
            ),
        ),
    ]
