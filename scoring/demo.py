"""Demo history with a learnable signal, then a trained, promoted model and scores (for `make run`).

Called by ``seed_demo`` after its own data. Generator (the same idea as tests/scoring/synthetic.py):
every open demo account gets a hidden willingness to pay ``w`` ~ Beta(0.5, 0.5), and over the last 25–110 days

- 3–5 calls at lawful local hours, through the compliance gate (refused ones are simply skipped):
  each reaches the borrower with probability 0.05 + 0.8·w, ending in a promise with 0.5·w, a refusal
  with 0.4·(1 − w);
- up to 3 past promises (each with probability 0.1 + 0.6·w; made then, due 7 days later), kept with
  probability w, else broken;
- in each 30-day window a payment (3–8 % of the balance) with probability sigmoid(−3.2 + 5·w − 0.003·dpd).

So "kept promises", "reached often" and "paid recently" predict the next payment, which is what
the model learns and what the reasons on the queue and the case page then show.
Promises in the past are written directly: the promise service (rightly) refuses a past due date,
and these are history, not new commitments; attempts and payments go through the services.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

DEMO_MIN_OUTCOMES = 60  # the demo's lenders have ~100 accounts each; production uses SCORING_MIN_OUTCOMES


def demo_scoring_seed(*, seed: int = 7, stdout=None) -> dict:
    from cases import services as case_services
    from cases.gate import contact_check
    from cases.models import OverdueAccount, PromiseToPay, User

    from . import services
    from .strategy import DEFAULT_STRATEGY
    from .strategy_services import experiment_set, strategy_publish

    rnd = random.Random(seed * 1009)
    now = timezone.now()
    accounts = list(OverdueAccount.objects.filter(status__in=OverdueAccount.OPEN_STATUSES)
                    .select_related("borrower", "assigned_agent", "lender").order_by("pk"))
    fallback = User.objects.filter(role=User.Role.SUPERVISOR).order_by("pk").first()
    for account in accounts:
        w = rnd.betavariate(0.5, 0.5)  # mostly clear payers and clear non-payers: a signal 300 accounts can show
        zone = ZoneInfo((account.borrower.zones or ("Asia/Shanghai",))[0])
        agent = account.assigned_agent or fallback
        for _ in range(rnd.randint(3, 5)):
            day = timezone.localdate(now, zone) - timedelta(days=rnd.randint(25, 110))
            at = datetime.combine(day, time(rnd.randint(9, 18), rnd.choice([0, 20, 40])), zone)
            r = rnd.random()
            if rnd.random() < 0.05 + 0.8 * w:
                outcome = "promise" if r < 0.5 * w else ("refused" if r > 1 - 0.4 * (1 - w) else "right_party_contact")
            else:
                outcome = "no_answer" if r < 0.6 else "busy"
            # A past contact is stored even when it broke a rule (a breach): keep the demo history lawful.
            if not contact_check(account=account, channel="call", at=at).allowed:
                continue
            try:
                case_services.contact_attempt_record(account=account, actor=agent, channel="call", outcome=outcome,
                                                     occurred_at=at, notes="演示数据", source="import")
            except (case_services.ContactRefused, ValidationError):
                continue
        for _ in range(sum(rnd.random() < 0.1 + 0.6 * w for _ in range(3))):
            made = now - timedelta(days=rnd.randint(40, 110))
            kept = rnd.random() < w
            amount = max(Decimal("100"), (account.balance * Decimal("0.05")).quantize(Decimal("0.01")))
            with transaction.atomic():
                p = PromiseToPay.objects.create(account=account, amount=amount, currency=account.currency,
                                                due_date=(made + timedelta(days=7)).date(),
                                                status="kept" if kept else "broken", paid_amount=amount if kept else 0,
                                                created_by=agent)
                PromiseToPay.objects.filter(pk=p.pk).update(created_at=made)  # history: when it was made
        dpd = account.days_past_due
        for window in range(4):
            if rnd.random() < 1 / (1 + math.exp(3.2 - 5 * w + 0.003 * max(dpd - 30 * window, 0))):
                account.refresh_from_db(fields=["balance", "status"])
                if account.balance <= 0:
                    break
                amount = min(account.balance, (account.balance * Decimal(rnd.randint(3, 8)) / 100).quantize(Decimal("0.01")))
                if amount > 0:
                    case_services.payment_record(actor=agent, account=account, amount=amount, method="bank transfer",
                                                 paid_at=now - timedelta(days=rnd.uniform(30 * window + 0.2, 30 * (window + 1))))
    out = {"accounts": len(accounts)}
    try:
        model = services.score_model_train(min_outcomes=DEMO_MIN_OUTCOMES)
    except ValidationError as exc:
        out["model"] = None
        if stdout:
            stdout.write(f"Scoring: no model trained ({' '.join(exc.messages)}); rule scores only.")
    else:
        services.score_model_promote(actor=None, model=model)
        out["model"] = model.version
        if stdout:
            m = model.metrics["test"]
            stdout.write(f"Scoring: model v{model.version} trained and promoted "
                         f"(held-out AUC {m.get('auc')}, days-past-due alone {m.get('auc_dpd')}).")
    out.update(services.scores_refresh())
    strategy = strategy_publish(actor=None, code="standard", name="Standard", rules=DEFAULT_STRATEGY)
    light = strategy_publish(actor=None, code="light", name="Light touch",
                             rules={"bands": {"high": 0.5, "medium": 0.2},
                                    "steps": [{"day": 2, "channel": "sms"}, {"day": 14, "channel": "letter"}]})
    lender = accounts[0].lender if accounts else None
    if lender is not None:
        experiment_set(actor=None, lender=lender, champion=strategy.code, challenger=light.code)
    return out
