"""Template filters of the lender portal: amounts with thousands separators in every language."""

from django import template

from cases.importers.selectors import money as _money

register = template.Library()


@register.filter
def money(value) -> str:
    """{{ a.balance|money }} -> "1,234,567.80" (Django's zh-Hans number format does not group)."""
    return _money(value)
