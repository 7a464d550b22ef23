"""Reads for scoring: a page's scores and reasons, model versions, strategies, experiment results."""

from __future__ import annotations

import math
from decimal import Decimal

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, QuerySet, Sum

from .models import AccountScore, ScoreModel
from .reasons import reason_texts


def account_score(*, account) -> AccountScore | None:
    """The account's score if loaded with it (``select_related("score")``: no query) or stored."""
    try:
        return account.score
    except ObjectDoesNotExist:
        return None


def score_summary(*, account) -> dict | None:
    """What the queue and the case page show: probability, expected recovery, reasons in the reader's language."""
    score = account_score(account=account)
    if score is None:
        return None
    return {
        "percent": round(score.probability * 100),
        "expected_recovery": score.expected_recovery,
        "method": score.method,
        "reasons": reason_texts(score.reasons),
        "scored_at": score.scored_at,
    }


def score_model_list() -> QuerySet[ScoreModel]:
    return ScoreModel.objects.select_related("created_by", "promoted_by").order_by("-version")


def score_model_in_use() -> ScoreModel | None:
    return ScoreModel.objects.filter(status=ScoreModel.Status.PROMOTED).first()


# ---- champion / challenger results ------------------------------------------------------------

Z95 = 1.959964


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (sound for small n and rates near 0 or 1)."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_ci(values: list[float], z: float = Z95) -> tuple[float, float, float]:
    """Mean with a normal-approximation interval (per-account recovery fractions)."""
    n = len(values)
    if n == 0:
        return (0.0, 0.0, 0.0)
    mean = sum(values) / n
    if n < 2:
        return (mean, mean, mean)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = z * sd / math.sqrt(n)
    return (mean, mean - half, mean + half)


def experiment_results(*, experiment) -> list[dict]:
    """Per arm since the experiment started: recovery, paying, contact, complaint and refusal rates with 95% CIs.

    A constant number of queries (accounts, payments, attempts, complaints, refusals), grouped per account
    in SQL and per arm in Python (the arm is a hash of the account id, see scoring.strategy.arm_for).
    Complaints are the register's (borrower or third party); disputes raised are counted apart.
    """
    from borrowers.models import Complaint
    from cases.models import ContactAttempt, OverdueAccount, Payment
    from compliance.models import AuditEvent

    from .strategy import CHALLENGER, CHAMPION, HOLDOUT, arm_for

    since = experiment.started_at
    accounts = dict(OverdueAccount.objects.filter(lender_id=experiment.lender_id).values_list("pk", "balance"))
    paid = dict(Payment.objects.filter(account__lender_id=experiment.lender_id, paid_at__gte=since)
                .values("account_id").annotate(s=Sum("amount")).values_list("account_id", "s"))
    attempts = ContactAttempt.objects.filter(lender_id=experiment.lender_id, occurred_at__gte=since)
    contacted = set(attempts.filter(outcome__in=("right_party_contact", "promise", "refused", "dispute_raised"))
                    .values_list("account_id", flat=True).distinct())
    disputes = set(attempts.filter(outcome="dispute_raised").values_list("account_id", flat=True).distinct())
    complaints = set(Complaint.objects.filter(account__lender_id=experiment.lender_id, created_at__gte=since)
                     .values_list("account_id", flat=True).distinct())
    refusals = dict(AuditEvent.objects.filter(lender_id=experiment.lender_id, created_at__gte=since,
                                              action="compliance.contact.blocked")
                    .values("account_id").annotate(n=Count("id")).values_list("account_id", "n"))
    arms: dict[str, dict] = {}
    for account_id, balance in accounts.items():
        arm = arm_for(seed=experiment.seed, account_id=account_id, challenger_share=float(experiment.challenger_share),
                      holdout_share=float(experiment.holdout_share), has_challenger=bool(experiment.challenger))
        a = arms.setdefault(arm, {"arm": arm, "n": 0, "fractions": [], "paying": 0, "contacted": 0, "disputes": 0,
                                  "complaints": 0, "refused_accounts": 0, "refusals": 0, "recovered": Decimal("0")})
        got = paid.get(account_id) or Decimal("0")
        owed = balance + got  # the balance when the experiment started, give or take new placements
        a["n"] += 1
        a["recovered"] += got
        a["fractions"].append(float(got / owed) if owed > 0 else 0.0)
        a["paying"] += got > 0
        a["contacted"] += account_id in contacted
        a["disputes"] += account_id in disputes
        a["complaints"] += account_id in complaints
        a["refused_accounts"] += account_id in refusals
        a["refusals"] += refusals.get(account_id, 0)
    out = []
    for name in (CHAMPION, CHALLENGER, HOLDOUT):
        a = arms.get(name)
        if a is None:
            continue
        n = a["n"]
        mean, lo, hi = mean_ci(a.pop("fractions"))
        a["recovery"] = (mean, lo, hi)
        for key in ("paying", "contacted", "disputes", "complaints", "refused_accounts"):
            a[f"{key}_rate"] = (a[key] / n if n else 0.0, *wilson(a[key], n))
        out.append(a)
    return out
