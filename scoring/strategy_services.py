"""Writes for strategies and experiments, and the daily run of strategy steps through the gate.

Every automated step is outreach, so it goes through ``cases.services.contact_attempt_record``
(the one gate: checked, recorded or refused, audited there). A step is claimed first (a
``StrategyStepRun`` row, unique per account, strategy version and step, committed before the gate
is asked), so a retried or duplicated run never sends a step twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from compliance.audit import audit_log
from servicing import clock

from .models import Experiment, Strategy, StrategyStepRun
from .selectors import account_score
from .strategy import AUTOMATED, CHALLENGER, CHAMPION, HOLDOUT, StrategyError, StrategySpec, arm_for

log = logging.getLogger(__name__)

# Which ContactAttempt.source an automated step records. "reminder" until cases adds a "strategy" source
# (proposed to the lead: ContactAttempt.Source.STRATEGY = "strategy"); the audit data names the step.
STEP_SOURCE = "reminder"


def strategy_publish(*, actor, code: str, name: str, rules: dict, effective_from: datetime | None = None) -> Strategy:
    """A new published version of strategy ``code`` (validated on the way in), audited."""
    try:
        StrategySpec.from_dict(rules)
    except StrategyError as exc:
        raise ValidationError({"rules": str(exc)}) from exc
    effective_from = effective_from or timezone.now()
    with transaction.atomic():
        last = Strategy.objects.select_for_update().filter(code=code).aggregate(v=Max("version"))["v"] or 0
        row = Strategy.objects.create(code=code, version=last + 1, name=name, rules=rules, status="published",
                                      effective_from=effective_from, created_by=actor if getattr(actor, "pk", None) else None)
        audit_log(action="scoring.strategy.published", actor=actor, subject=row, actor_label="" if actor else "system",
                  data={"code": code, "version": row.version, "effective_from": effective_from})
    return row


def experiment_set(*, actor, lender, champion: str, challenger: str = "", challenger_share: Decimal = Decimal("0.2"),
                   holdout_share: Decimal = Decimal("0.1"), seed: str = "2026") -> Experiment:
    """Start (or change) a lender's champion/challenger split; audited with the old and new settings."""
    for code in filter(None, (champion, challenger)):
        if not Strategy.objects.filter(code=code, status="published").exists():
            raise ValidationError({"champion": _("No published strategy %(code)r.") % {"code": code}})
    with transaction.atomic():
        exp = Experiment.objects.select_for_update().filter(lender=lender).first()
        before = None if exp is None else {"champion": exp.champion, "challenger": exp.challenger,
                                           "challenger_share": exp.challenger_share, "holdout_share": exp.holdout_share,
                                           "seed": exp.seed}
        exp = exp or Experiment(lender=lender, started_at=timezone.now())
        exp.champion, exp.challenger, exp.seed = champion, challenger, seed
        exp.challenger_share, exp.holdout_share = Decimal(challenger_share), Decimal(holdout_share)
        exp.full_clean()
        exp.save()
        audit_log(action="scoring.experiment.set", actor=actor, lender_id=lender.pk, subject=exp,
                  actor_label="" if actor else "system",
                  data={"before": before, "champion": champion, "challenger": challenger,
                        "challenger_share": exp.challenger_share, "holdout_share": exp.holdout_share, "seed": seed})
    return exp


def experiment_arm(*, experiment: Experiment, account_id: int) -> str:
    return arm_for(seed=experiment.seed, account_id=account_id, challenger_share=float(experiment.challenger_share),
                   holdout_share=float(experiment.holdout_share), has_challenger=bool(experiment.challenger))


def strategy_in_force(*, code: str, at: datetime) -> Strategy | None:
    return (Strategy.objects.filter(code=code, status="published", effective_from__lte=at)
            .order_by("-effective_from", "-version").first())


def _claim(*, account, strategy: Strategy, step, arm: str, now: datetime) -> StrategyStepRun | None:
    try:
        with transaction.atomic():
            return StrategyStepRun.objects.create(
                account=account, lender_id=account.lender_id, strategy_code=strategy.code,
                strategy_version=strategy.version, arm=arm, step=step.index, channel=step.channel,
                state=StrategyStepRun.State.SKIPPED, detail={"claimed": True}, ran_at=now,
            )
    except IntegrityError:
        return None  # another run took it


def _finish(run: StrategyStepRun, *, state: str, detail: dict) -> None:
    with transaction.atomic():
        run.state, run.detail = state, detail
        run.save(update_fields=["state", "detail"])
        audit_log(action=f"scoring.strategy.step_{state}", lender_id=run.lender_id, subject=run,
                  account_id=run.account_id, actor_label="strategy",
                  data={"strategy": run.strategy_code, "version": run.strategy_version, "step": run.step,
                        "channel": run.channel, "arm": run.arm, **detail})


def _send(*, account, channel: str, key: str) -> str:
    """SMS and e-mail go out through the reminders' senders (same backends, same idempotency key use)."""
    from reminders.senders import OutboundMessage, get_sender

    borrower = account.borrower
    to = (borrower.phones or [""])[0] if channel == "sms" else (borrower.emails or [""])[0]
    if not to:
        return ""
    body = f"[{account.lender.name}] {account.external_ref}: please contact us about your overdue balance."
    return get_sender(channel).send(OutboundMessage(key=key, channel=channel, to=str(to), body=body,
                                                   subject=f"{account.lender.name} {account.external_ref}"))


def step_execute(*, account, strategy: Strategy, step, arm: str, now: datetime) -> StrategyStepRun | None:
    """Claim, then run one step: automated channels through the gate; calls and visits left to the agent."""
    from cases.services import ContactRefused, contact_attempt_record

    run = _claim(account=account, strategy=strategy, step=step, arm=arm, now=now)
    if run is None:
        return None
    if step.channel not in AUTOMATED:
        _finish(run, state=StrategyStepRun.State.AGENT, detail={"agent_id": account.assigned_agent_id})
        return run
    try:
        attempt = contact_attempt_record(
            account=account, actor=None, channel=step.channel, outcome="delivered", occurred_at=now,
            source=STEP_SOURCE, notes=f"strategy {strategy.code} v{strategy.version} step {step.index + 1} ({arm})",
        )
    except ContactRefused as refused:
        _finish(run, state=StrategyStepRun.State.REFUSED, detail={
            "violations": [v.code for v in refused.decision.violations],
            "next_allowed_at": refused.decision.next_allowed_at.isoformat() if refused.decision.next_allowed_at else None,
        })
        return run
    except ValidationError as exc:
        _finish(run, state=StrategyStepRun.State.SKIPPED, detail={"error": "; ".join(exc.messages)[:500]})
        return run
    detail = {"attempt_id": attempt.pk}
    if step.channel in ("sms", "email"):
        try:
            detail["message_id"] = _send(account=account, channel=step.channel, key=f"strategy-{run.pk}")
        except Exception as exc:  # noqa: BLE001 - the attempt is recorded; a failed send is kept for a supervisor
            detail["send_error"] = str(exc)[:300]
    _finish(run, state=StrategyStepRun.State.DONE, detail=detail)
    return run


def strategy_steps_run(*, now: datetime | None = None, lender_id: int | None = None, chunk: int = 2000) -> dict:
    """Each lender in an experiment: every open account's next due step (at most one a day)."""
    from cases.models import OverdueAccount

    now = now or clock.now()
    counts = {"done": 0, "refused": 0, "agent": 0, "skipped": 0, "holdout": 0}
    experiments = Experiment.objects.select_related("lender")
    if lender_id is not None:
        experiments = experiments.filter(lender_id=lender_id)
    for exp in experiments:
        specs = {}
        for arm, code in ((CHAMPION, exp.champion), (CHALLENGER, exp.challenger)):
            row = strategy_in_force(code=code, at=now) if code else None
            if row is not None:
                specs[arm] = (row, StrategySpec.from_dict(row.rules))
        accounts = (OverdueAccount.objects.filter(lender=exp.lender, status__in=OverdueAccount.OPEN_STATUSES)
                    .select_related("borrower", "lender", "score").order_by("pk"))
        last = 0
        while batch := list(accounts.filter(pk__gt=last)[:chunk]):
            last = batch[-1].pk
            done: dict[tuple[int, str, int], set[int]] = {}
            for acc_id, code, version, step in StrategyStepRun.objects.filter(
                    account_id__in=[a.pk for a in batch]).values_list("account_id", "strategy_code", "strategy_version", "step"):
                done.setdefault((acc_id, code, version), set()).add(step)
            for account in batch:
                arm = experiment_arm(experiment=exp, account_id=account.pk)
                if arm == HOLDOUT:
                    counts["holdout"] += 1
                    continue
                if arm not in specs:
                    continue
                row, spec = specs[arm]
                start = max(timezone.localdate(account.placed_at), timezone.localdate(exp.started_at))
                day = (timezone.localdate(now) - start).days + 1
                score = account_score(account=account)  # loaded with the batch (select_related)
                step = spec.next_step(day=day, bucket=account.bucket, balance=account.balance,
                                      probability=score.probability if score else None,
                                      done=done.get((account.pk, row.code, row.version), set()))
                if step is None:
                    continue
                run = step_execute(account=account, strategy=row, step=step, arm=arm, now=now)
                if run is not None:
                    counts[run.state] += 1
    return counts
