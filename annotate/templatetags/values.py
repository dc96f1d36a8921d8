"""`{{ value|value_text }}`: a label value in a few words, whatever its task type (annotate/values.py)."""

from django import template

from annotate.values import value_text as _value_text

register = template.Library()


@register.filter
def value_text(value) -> str:
    return _value_text(value if isinstance(value, dict) else None)
