"""Small builders for test data (plain functions, real database rows)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal

from cases.models import Borrower, Lender, OverdueAccount, User

_seq = itertools.count(1)


def lender(*, code: str | None = None, status: str = "active") -> Lender:
    n = next(_seq)
    code = code or f"lender{n}"
    return Lender.objects.create(name=f"Lender {code}", code=code, status=status)


def user(*, role: str = "agent", lender: Lender | None = None, username: str | None = None, password: str = "pw-Secret-123") -> User:
    n = next(_seq)
    u = User(username=username or f"{role}{n}", role=role, lender=lender)
    u.set_password(password)
    u.save()
    return u


def borrower(*, lender: Lender, jurisdiction: str = "CN", zones: tuple[str, ...] = ("Asia/Shanghai",), **flags) -> Borrower:
    n = next(_seq)
    return Borrower.objects.create(
        lender=lender, name=f"借款人{n}", national_id="", phones=[f"1380000{n:04d}"], emails=[f"b{n}@example.com"],
        jurisdiction=jurisdiction, time_zones=list(zones), **flags,
    )


def account(*, lender: Lender, borrower: Borrower | None = None, agent: User | None = None, balance: str = "1000.00",
            currency: str = "CNY", due_days_ago: int = 45, status: str | None = None, **borrower_kwargs) -> OverdueAccount:
    n = next(_seq)
    borrower = borrower or globals()["borrower"](lender=lender, **borrower_kwargs)
    return OverdueAccount.objects.create(
        lender=lender, borrower=borrower, external_ref=f"REF-{n:06d}", principal=Decimal(balance), balance=Decimal(balance),
        currency=currency, due_date=date.today() - timedelta(days=due_days_ago), assigned_agent=agent,
        status=status or ("assigned" if agent else "new"),
    )
