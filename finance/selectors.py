"""Reads on money."""

from __future__ import annotations

from decimal import Decimal

from cases.models import OverdueAccount, Payment, User
from cases.selectors import account_list_for_user

from .models import ZERO, AccountBalance, PaymentAllocation, Settlement


def account_balance_parts(*, account: OverdueAccount) -> dict[str, Decimal]:
    """The parts as stored; for an account no payment has touched yet, the placed parts (nothing is written)."""
    from .services import initial_parts

    ab = AccountBalance.objects.filter(account_id=account.pk).first()
    if ab is None:
        return initial_parts(account=account, balance=account.balance)
    return ab.parts()


def account_payments(*, account: OverdueAccount, limit: int = 50) -> list[Payment]:
    """The account's latest payments with their allocation and reversal (``None`` for older payments)."""
    payments = list(Payment.objects.filter(account_id=account.pk).order_by("-paid_at", "-pk")[:limit])
    allocations = PaymentAllocation.objects.filter(pk__in=[p.pk for p in payments]).select_related("payment__reversal")
    by_id = {a.pk: a for a in allocations}
    for p in payments:
        p.alloc = by_id.get(p.pk)
        p.reversed = bool(p.alloc and hasattr(p.alloc.payment, "reversal"))
    return payments


def account_money(*, account: OverdueAccount) -> dict:
    parts = account_balance_parts(account=account)
    return {"parts": [(p, parts[p]) for p in ("principal", "interest", "fees", "costs")],
            "total": sum(parts.values(), ZERO), "currency": account.currency,
            "payments": account_payments(account=account), "settlement": account_settlement(account=account),
            "can_offer": account.is_open and account.balance > 0}


def payment_for_user_by_ref(*, user: User, external_ref: str) -> Payment | None:
    """A payment reported under ``external_ref`` on an account ``user`` may see (else None: a 404)."""
    allocation = (PaymentAllocation.objects.filter(external_ref=external_ref,
                                                   account__in=account_list_for_user(user=user))
                  .select_related("payment").first())
    return allocation.payment if allocation else None


def settlements_pending():
    """The supervisors' queue: offers below the floor, oldest first."""
    return (Settlement.objects.filter(status=Settlement.Status.PENDING)
            .select_related("account", "account__lender", "offered_by").order_by("offered_at"))


def settlements_recent(*, limit: int = 50):
    return (Settlement.objects.exclude(status=Settlement.Status.PENDING)
            .select_related("account", "account__lender", "offered_by", "decided_by").order_by("-offered_at")[:limit])


def account_settlement(*, account: OverdueAccount) -> Settlement | None:
    return Settlement.objects.filter(account_id=account.pk).order_by("-offered_at").first()
