"""Model instances from hand-written SQL rows equal what the ORM loads, on both databases."""

import pytest
from django.db import connection
from django.utils import timezone

from annotate.models import Annotation, Item
from annotate.raw_rows import columns, from_row, insert, table
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db


def _fetch(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def test_a_row_becomes_the_instance_the_orm_would_load():
    project = make_project(items=1)
    Item.objects.filter(project=project).update(
        metadata={"source": "ünïcode", "n": [1, 2]},
        proposal={"value": {"choices": ["positive"]}},
        priority=0.25,
    )
    expected = Item.objects.get(project=project)
    row = _fetch(f"SELECT {columns(Item, 'i')} FROM {table(Item)} i WHERE i.id = %s", [expected.pk])
    item = from_row(Item, row)
    for field in Item._meta.concrete_fields:
        assert getattr(item, field.attname) == getattr(expected, field.attname), field.name
    assert item.created_at.tzinfo is not None
    assert not item._state.adding


def test_named_fields_come_in_the_models_order_whatever_order_they_are_asked_in():
    project = make_project(items=1)
    Item.objects.filter(project=project).update(metadata={"k": "v"}, priority=0.5)
    expected = Item.objects.get(project=project)
    fields = ("priority", "metadata", "external_id")
    row = _fetch(f"SELECT {columns(Item, 'i', fields)} FROM {table(Item)} i WHERE i.id = %s", [expected.pk])
    item = from_row(Item, row, fields)
    assert (item.priority, item.metadata, item.external_id) == (0.5, {"k": "v"}, expected.external_id)
    with pytest.raises(ValueError, match="no field 'nope'"):
        columns(Item, "i", ("nope",))


def test_insert_stores_every_named_field_and_sets_the_primary_key():
    project = make_project(items=1)
    item = Item.objects.get(project=project)
    annotation = Annotation(
        project_id=project.pk,
        item_id=item.pk,
        annotator=UserFactory(),
        value={"choices": ["négatif"]},
        created_at=timezone.now(),
        proposal_value=None,
    )
    with connection.cursor() as cursor:
        insert(
            cursor,
            annotation,
            ("project_id", "item_id", "annotator_id", "value", "active_ms", "created_at", "late", "counted")
            + ("source", "proposal_value"),
        )
    stored = Annotation.objects.get(pk=annotation.pk)
    assert stored.value == {"choices": ["négatif"]}
    assert stored.proposal_value is None
    assert stored.created_at == annotation.created_at
