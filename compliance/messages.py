"""Violation explanations in the user's language.

The engine gives each violation as English text (``message``: kept as is in the audit log and the
API, so records do not depend on who was looking) and as data (``parts``: templates and raw values,
``compliance/rules/text.py``). Here the templates are translated and the values formatted for the
active language: dates and times numerically with localised weekday names, words through the
"compliance" translation context.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.utils import dateformat, translation
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.translation import gettext, pgettext, pgettext_lazy

from .rules import Violation
from .rules.text import Hours, Local, Seq, Text, Word, days_phrase, hhmm

# The words the engine passes as values, so that makemessages lists them: channel nouns and
# channels (compliance/rules/policy.py) and the counted labels of the published policies.
VOCABULARY = (
    pgettext_lazy("compliance", "calls"), pgettext_lazy("compliance", "text messages"),
    pgettext_lazy("compliance", "emails"), pgettext_lazy("compliance", "letters"),
    pgettext_lazy("compliance", "visits"), pgettext_lazy("compliance", "call"), pgettext_lazy("compliance", "sms"),
    pgettext_lazy("compliance", "email"), pgettext_lazy("compliance", "letter"), pgettext_lazy("compliance", "visit"),
    pgettext_lazy("compliance", "attempts"), pgettext_lazy("compliance", "contact"),
    pgettext_lazy("compliance", "contacts"), pgettext_lazy("compliance", "telephone conversation"),
    pgettext_lazy("compliance", "phone conversations"), pgettext_lazy("compliance", "unanswered call attempts"),
    pgettext_lazy("compliance", "telephone communications (calls or texts)"),
)


def violation_text(violation: Violation) -> str:
    """The explanation in the active language (the engine's own English when that is active)."""
    if not violation.parts or (translation.get_language() or "en").startswith("en"):
        return violation.message
    return " ".join(localized(p) for p in violation.parts)


def localized(value: object) -> str:
    if isinstance(value, Text):
        template = gettext(value.template)
        return template % {k: localized(v) for k, v in value.params} if value.params else template
    if isinstance(value, Word):
        return pgettext("compliance", value.text)  # policy wording without a translation stays as written
    if isinstance(value, Local):
        return f"{dateformat.format(value.instant.astimezone(ZoneInfo(value.zone)), 'Y-m-d D H:i')} ({value.zone})"
    if isinstance(value, datetime):
        return dateformat.format(value, "Y-m-d H:i")
    if isinstance(value, date):
        return dateformat.format(value, "Y-m-d D")
    if isinstance(value, Seq):
        sep = pgettext("list of values", " and ") if value.sep == " and " else value.sep
        return sep.join(localized(i) for i in value.items)
    if isinstance(value, Hours):
        names = tuple(str(WEEKDAYS_ABBR[d]) for d in range(7))
        every_day = pgettext("compliance", "every day")
        return ", ".join(f"{hhmm(a)}–{hhmm(b)} ({days_phrase(d, names, every_day)})" for a, b, d in value.windows)
    return str(value)
