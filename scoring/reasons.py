"""Top reasons of a score: stored as data (feature, effect, values), phrased in the reader's language."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from django.utils.translation import gettext as _

from .features import FEATURES, NEVER_DAYS

TOP_N = 3
_COL = {name: i for i, name in enumerate(FEATURES)}


_PROMISES = ("promises_kept", "promises_broken")
_CONTACTS = ("contact_rate_90d", "contacts_90d", "attempts_90d")
_DAYS = ("days_since_contact", "days_since_payment", "days_past_due")


def _values_json(feature: str, x: list[float], balance: str) -> str:
    """The figures a reason quotes, read from the same feature row the score used, as a JSON object.

    Written as text directly: this runs for every reason of every account (3M times for 1M accounts).
    """
    def v(name: str) -> int:
        return int(x[_COL[name]] + 0.5)

    if feature in _PROMISES:
        kept, broken = v("promises_kept"), v("promises_broken")
        return f'{{"kept":{kept},"broken":{broken},"total":{kept + broken}}}'
    if feature in _CONTACTS:
        return f'{{"contacts":{v("contacts_90d")},"attempts":{v("attempts_90d")}}}'
    if feature in _DAYS:
        return f'{{"days":{v(feature)}}}'
    if feature == "log_balance":
        return f'{{"amount":"{Decimal(balance).quantize(Decimal("0.01"))}"}}'
    if feature == "paid_fraction":
        return f'{{"percent":{int(x[_COL[feature]] * 100 + 0.5)}}}'
    return f'{{"count":{v(feature)}}}'


def reasons_json(contrib: np.ndarray, X: np.ndarray, balances) -> list[str]:
    """For each row, the JSON list of its TOP_N reasons: the features that moved its score most
    (non-zero only), strongest first, each ``{"f": feature, "e": +1/-1, "v": {values quoted}}``.

    Lender indicator columns (beyond FEATURES) are never a reason: they say nothing about the borrower.
    """
    c = contrib[:, : len(FEATURES)]
    order = np.argsort(-np.abs(c), axis=1)[:, :TOP_N]
    top = np.take_along_axis(c, order, axis=1).tolist()
    order = order.tolist()
    rows = X.tolist()
    out = []
    for r, (idx, vals) in enumerate(zip(order, top, strict=True)):
        parts = [f'{{"f":"{FEATURES[j]}","e":{1 if val > 0 else -1},"v":{_values_json(FEATURES[j], rows[r], balances[r])}}}'
                 for j, val in zip(idx, vals, strict=True) if abs(val) >= 1e-6]
        out.append("[" + ",".join(parts) + "]")
    return out


def reason_text(reason: dict) -> str:
    """One reason in the active language, e.g. "kept 2 of 2 promises" or "no contact in 30 days"."""
    f, v = reason.get("f", ""), reason.get("v", {})
    if f == "promises_kept":
        text = _("kept %(kept)s of %(total)s promises") % v
    elif f == "promises_broken":
        text = _("broke %(broken)s of %(total)s promises") % v
    elif f in ("contact_rate_90d", "contacts_90d"):
        text = _("reached on %(contacts)s of %(attempts)s attempts in 90 days") % v
    elif f == "attempts_90d":
        text = _("%(attempts)s outbound attempts in 90 days") % v
    elif f == "days_since_contact":
        days = v.get("days", NEVER_DAYS)
        if days >= NEVER_DAYS:
            text = _("never reached")
        elif days >= 30:
            text = _("no contact in %(days)s days") % v
        else:
            text = _("last contact %(days)s days ago") % v
    elif f == "days_since_payment":
        text = _("no payment yet") if v.get("days", NEVER_DAYS) >= NEVER_DAYS else _("last payment %(days)s days ago") % v
    elif f == "days_past_due":
        text = _("%(days)s days past due") % v
    elif f == "log_balance":
        text = _("balance of %(amount)s") % v
    elif f == "paid_fraction":
        text = _("%(percent)s%% of the principal repaid") % v
    elif f == "promises_open":
        text = _("open promises: %(count)s") % v
    elif f == "payments_count":
        text = _("payments made: %(count)s") % v
    elif f == "promise_outcomes_90d":
        text = _("promises given on calls in 90 days: %(count)s") % v
    elif f == "refusals_90d":
        text = _("refused to pay %(count)s times in 90 days") % v
    elif f == "inbound_90d":
        text = _("called in %(count)s times in 90 days") % v
    elif f == "messages_90d":
        text = _("SMS and e-mails in 90 days: %(count)s") % v
    elif f == "wrong_numbers":
        text = _("wrong-number outcomes: %(count)s") % v
    else:
        text = f
    return ("↑ " if reason.get("e", 0) > 0 else "↓ ") + text


def reason_texts(reasons) -> list[str]:
    return [reason_text(r) for r in (reasons or [])]
