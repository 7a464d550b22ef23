from __future__ import annotations

from decimal import Decimal

from cases.models import OverdueAccount
from finance.models import PARTS, AccountBalance
from tests import factories as f


def parts_set(account, **parts: str) -> AccountBalance:
    """Give ``account`` balance parts (as a placement with interest/fees/costs would) adding up to its balance."""
    values = {p: Decimal(parts.get(p, "0")) for p in PARTS}
    ab = AccountBalance.objects.create(account=account, currency=account.currency, **values,
                                       **{f"placed_{p}": v for p, v in values.items()})
    account.balance = sum(values.values())
    account.save(update_fields=["balance"])
    return ab


def m2_world() -> dict:
    """An M2 account of 1000 with its agent, and a supervisor: the platform's default settlement terms
    (no published rule) set a 90 % floor and 6 instalments for it."""
    lender = f.lender()
    agent = f.user(role="agent")
    account = f.account(lender=lender, agent=agent, balance="1000.00")
    OverdueAccount.objects.filter(pk=account.pk).update(bucket="M2", days_past_due=45)
    account.refresh_from_db()
    return {"lender": lender, "agent": agent, "account": account, "supervisor": f.user(role="supervisor")}
