"""The item browser's index (annotate/browser.py).

item_browser_created_idx (project, created_at, id): the browser's pages in time order, either way
round. A keyset page starts at its cursor's (created_at, id) and reads a page of index rows, and a
filter is checked on the rows as they come, so page 50 costs what page 1 does. Without it every
page sorts all of the project's items.

No trigram index for the text search: on PostgreSQL a GIN index on UPPER(text) made a
100,000-row import take 4.7 s instead of 1.9 s (the import's target is 4 s), while search
without it stays within the browser's target (bench/bench_item_browser.py).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0011_quality_review_gold"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="item",
            index=models.Index(fields=["project", "created_at", "id"], name="item_browser_created_idx"),
        ),
    ]
