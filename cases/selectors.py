"""Reads on cases, always scoped to what the user may see."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import OverdueAccount, User


def account_list_for_user(*, user: User) -> QuerySet[OverdueAccount]:
    """Accounts visible to ``user``: lender users their lender's, agents their assigned ones, supervisors all."""
    qs = OverdueAccount.objects.select_related("lender", "borrower", "assigned_agent")
    if not user.is_authenticated or not user.is_active:
        return qs.none()
    if user.is_supervisor:
        return qs
    if user.is_lender_user:
        return qs.filter(lender_id=user.lender_id)
    if user.is_agent:
        return qs.filter(assigned_agent=user)
    return qs.none()


def mask_phone(value: str) -> str:
    value = str(value)
    return value if len(value) < 7 else f"{value[:3]}****{value[-4:]}"


def mask_national_id(value: str) -> str:
    return value if len(value) < 8 else f"{value[:4]}{'*' * (len(value) - 8)}{value[-4:]}"
