"""Reads for reminders and notifications, scoped to what the user may see."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, F, QuerySet

from cases.models import User
from cases.selectors import account_list_for_user

from .models import Notification, Reminder


def reminder_list_for_user(*, user: User, filters: dict | None = None) -> QuerySet[Reminder]:
    """Reminders on accounts ``user`` may see, filtered by state/kind/channel/lender/due date/account ref."""
    filters = filters or {}
    qs = Reminder.objects.select_related("account", "lender", "account__borrower", "recipient").filter(
        account__in=account_list_for_user(user=user).values("pk")
    )
    for field in ("state", "kind", "channel"):
        if filters.get(field):
            qs = qs.filter(**{field: filters[field]})
    if filters.get("lender"):
        qs = qs.filter(lender_id=filters["lender"])
    tz = ZoneInfo(settings.TIME_ZONE)
    if isinstance(filters.get("due_from"), date):
        qs = qs.filter(due_at__gte=datetime.combine(filters["due_from"], time.min, tzinfo=tz))
    if isinstance(filters.get("due_to"), date):
        qs = qs.filter(due_at__lte=datetime.combine(filters["due_to"], time.max, tzinfo=tz))
    if filters.get("ref"):
        qs = qs.filter(account__external_ref__icontains=filters["ref"])
    return qs.order_by("-due_at", "-id")


def reminder_state_counts(*, qs: QuerySet[Reminder]) -> dict[str, int]:
    counts = {state: 0 for state in Reminder.State.values}
    counts.update(dict(qs.order_by().values_list("state").annotate(n=Count("id")).values_list("state", "n")))
    return counts


def notification_list_for_user(*, user: User, unread_only: bool = False) -> QuerySet[Notification]:
    qs = Notification.objects.select_related("account").filter(user=user)
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    # Unread first, soonest due first.
    return qs.order_by(F("read_at").desc(nulls_first=True), F("due_at").asc(nulls_last=True), "-id")


def notification_unread_count(*, user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()
