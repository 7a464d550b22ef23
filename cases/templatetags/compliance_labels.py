"""Template filters that name compliance codes in the active language (incident queue, audit views)."""

from django import template
from django.utils.translation import pgettext

from cases.forms import WEEKDAY_CHOICES
from cases.models import ContactAttempt
from cases.views.presenters import RULE_TITLES

register = template.Library()
_CHANNELS = dict(ContactAttempt.Channel.choices)
_WEEKDAYS = dict(WEEKDAY_CHOICES)


@register.filter
def rule_title(code: str, fallback: str = "") -> str:
    """{{ v.code|rule_title:v.message }}: the rule's plain title; a code of a newer policy keeps its recorded text."""
    return str(RULE_TITLES.get(code, fallback or code))


@register.filter
def channel_label(code: str) -> str:
    return str(_CHANNELS.get(code, code))


@register.filter
def policy_text(text: str) -> str:
    """A seeded policy's citation or name (data, translated in context "policy")."""
    return pgettext("policy", text) if text else ""


@register.filter
def weekday_label(code: str) -> str:
    """"mon" -> "Mon" / "周一" (the short names the contact-times forms offer)."""
    return str(_WEEKDAYS.get(code, code))
