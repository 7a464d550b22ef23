from __future__ import annotations

from decimal import Decimal

from finance.models import PARTS, AccountBalance


def parts_set(account, **parts: str) -> AccountBalance:
    """Give ``account`` balance parts (as a placement with interest/fees/costs would) adding up to its balance."""
    values = {p: Decimal(parts.get(p, "0")) for p in PARTS}
    ab = AccountBalance.objects.create(account=account, currency=account.currency, **values,
                                       **{f"placed_{p}": v for p, v in values.items()})
    account.balance = sum(values.values())
    account.save(update_fields=["balance"])
    return ab
