"""The benchmarks' own PostgreSQL database: made anew for each run, analyzed after each bulk step,
checked after a saturation run (overlap never exceeded), and the queue's pick explained."""

import urllib.parse


def database_recreate(database_url: str) -> str:
    """Drop and create the bench database; returns the server's version."""
    import psycopg
    from psycopg import sql

    parts = urllib.parse.urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name:
        raise SystemExit(f"--database-url {database_url!r} names no database")
    maintenance = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return conn.execute("SHOW server_version").fetchone()[0]


def analyze() -> None:
    """What autovacuum would do on a running studio after a bulk load."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def overlap_check(project_id: int) -> dict:
    """What the database says after a run: nothing beyond overlap, counters equal to the rows."""
    from django.db import connection

    queries = {
        # Items whose counted annotations plus open leases exceed the overlap.
        "items_over_overlap": """
            SELECT count(*) FROM annotate_item i JOIN annotate_project p ON p.id = i.project_id
            LEFT JOIN (SELECT item_id, count(*) FILTER (WHERE counted) AS counted, count(*) AS total
                       FROM annotate_annotation WHERE project_id = %(p)s GROUP BY item_id) a
                   ON a.item_id = i.id
            LEFT JOIN (SELECT item_id, count(*) AS open FROM annotate_assignment
                       WHERE project_id = %(p)s AND status = 'open' GROUP BY item_id) l ON l.item_id = i.id
            WHERE i.project_id = %(p)s AND coalesce(a.counted, 0) + coalesce(l.open, 0) > p.overlap""",
        # Items labeled by more distinct annotators than the overlap (counted or not).
        "items_over_overlap_any_annotation": """
            SELECT count(*) FROM (SELECT item_id, count(DISTINCT annotator_id) AS n FROM annotate_annotation
                                  WHERE project_id = %(p)s GROUP BY item_id) a
            JOIN annotate_project p ON p.id = %(p)s WHERE a.n > p.overlap""",
        # Items leased to two annotators at once although overlap allows one.
        "items_double_leased": """
            SELECT count(*) FROM (SELECT item_id, count(*) AS n FROM annotate_assignment
                                  WHERE project_id = %(p)s AND status = 'open' GROUP BY item_id) l
            JOIN annotate_item i ON i.id = l.item_id
            WHERE l.n + i.annotation_count > (SELECT overlap FROM annotate_project WHERE id = %(p)s)""",
        "same_annotator_twice": """
            SELECT count(*) FROM (SELECT 1 FROM annotate_annotation WHERE project_id = %(p)s
                                  GROUP BY item_id, annotator_id HAVING count(*) > 1) d""",
        "annotation_count_mismatch": """
            SELECT count(*) FROM annotate_item i
            LEFT JOIN (SELECT item_id, count(*) AS n FROM annotate_annotation
                       WHERE project_id = %(p)s AND counted GROUP BY item_id) a ON a.item_id = i.id
            WHERE i.project_id = %(p)s AND i.annotation_count <> coalesce(a.n, 0)""",
        "lease_count_mismatch": """
            SELECT count(*) FROM annotate_item i
            LEFT JOIN (SELECT item_id, count(*) AS n FROM annotate_assignment
                       WHERE project_id = %(p)s AND status = 'open' GROUP BY item_id) l ON l.item_id = i.id
            WHERE i.project_id = %(p)s AND i.lease_count <> coalesce(l.n, 0)""",
        "late_annotations": "SELECT count(*) FROM annotate_annotation WHERE project_id = %(p)s AND late",
        "annotations": "SELECT count(*) FROM annotate_annotation WHERE project_id = %(p)s",
        "items_annotated": "SELECT count(DISTINCT item_id) FROM annotate_annotation WHERE project_id = %(p)s",
    }
    found = {}
    with connection.cursor() as cursor:
        for key, query in queries.items():
            cursor.execute(query, {"p": project_id})
            found[key] = cursor.fetchone()[0]
    problems = [
        k for k in queries if k not in ("late_annotations", "annotations", "items_annotated") and found[k]
    ]
    found["ok"] = not problems
    found["text"] = (
        f"{'OK' if not problems else 'VIOLATED: ' + ', '.join(problems)} "
        f"({found['annotations']} annotations on {found['items_annotated']} items, "
        f"{found['items_over_overlap']} over overlap, {found['items_double_leased']} over-leased, "
        f"{found['late_annotations']} late)"
    )
    return found


def next_query_explain(*, project_id: int, annotator_id: int) -> str:
    """EXPLAIN ANALYZE of the queue's pick for this annotator, from their bookmark (locks rolled back)."""
    from django.db import connection, transaction

    from annotate.models import Membership
    from annotate.queue import item_candidates_sql

    membership = Membership.objects.select_related("project").get(project_id=project_id, user_id=annotator_id)
    sql, params = item_candidates_sql(
        project=membership.project, annotator_id=annotator_id, membership=membership
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql + " FOR UPDATE SKIP LOCKED", params)
        plan = "\n".join(line for (line,) in cursor.fetchall())
        transaction.set_rollback(True)
    return plan
