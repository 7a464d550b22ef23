"""Calendar arithmetic shared by the borrower page's forms and the plan options."""

from __future__ import annotations

import calendar
from datetime import date


def add_months(d: date, n: int) -> date:
    """The same day ``n`` months later, or the month's last day when it has fewer days (31 Jan + 1 → 28/29 Feb)."""
    month = d.month - 1 + n
    year, month = d.year + month // 12, month % 12 + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))
