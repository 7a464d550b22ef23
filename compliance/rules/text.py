"""Explanations as data: each sentence of a violation is an English template with named fields and
the raw values for them, so a user interface can translate the template and format the values in
its own language (``compliance/messages.py``). ``render()`` gives the English text every caller,
the audit log and the API, also gets as ``Violation.message``.

Pure Python (no Django): templates are marked with the local no-op ``gettext_noop`` so Django's
``makemessages`` still finds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from .localtime import fmt_date, fmt_local, zone


def gettext_noop(message: str) -> str:
    """Marks a template for translation catalogues; returns it unchanged."""
    return message


@dataclass(frozen=True)
class Local:
    """An instant shown as wall time in a zone."""

    instant: datetime
    zone: str


@dataclass(frozen=True)
class Word:
    """A word or phrase a UI may translate: a channel, a label from policy data, a scope."""

    text: str


@dataclass(frozen=True)
class Seq:
    """Several values in one field ("A and B", "call/sms")."""

    items: tuple
    sep: str = " and "


@dataclass(frozen=True)
class Hours:
    """Allowed local hours: ((start minute, end minute, weekdays 0=Mon..6=Sun), ...)."""

    windows: tuple[tuple[int, int, tuple[int, ...]], ...]


@dataclass(frozen=True)
class Text:
    template: str
    params: tuple[tuple[str, object], ...] = ()

    def render(self, fmt: Callable[[object], str] | None = None) -> str:
        fmt = fmt or english
        if not self.params:
            return self.template
        return self.template % {k: fmt(v) for k, v in self.params}


def text(template: str, **params: object) -> Text:
    return Text(template, tuple(params.items()))


WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def days_phrase(days: tuple[int, ...], names: tuple[str, ...] = WEEKDAY_NAMES, every_day: str = "every day") -> str:
    if len(days) == 7:
        return every_day
    if days == tuple(range(days[0], days[-1] + 1)) and len(days) > 2:
        return f"{names[days[0]]}–{names[days[-1]]}"
    return ", ".join(names[d] for d in days)


def english(value: object) -> str:
    if isinstance(value, Text):
        return value.render(english)
    if isinstance(value, Word):
        return value.text
    if isinstance(value, Local):
        return fmt_local(zone(value.zone), value.instant)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return fmt_date(value)
    if isinstance(value, Seq):
        return value.sep.join(english(i) for i in value.items)
    if isinstance(value, Hours):
        return ", ".join(f"{hhmm(a)}–{hhmm(b)} ({days_phrase(d)})" for a, b, d in value.windows)
    return str(value)
