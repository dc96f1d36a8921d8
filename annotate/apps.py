"""The annotate app: projects, items, the queue, annotations, importing and exporting."""

from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    name = "annotate"
    verbose_name = "Annotation"
