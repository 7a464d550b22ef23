"""Writes on money: allocation of payments, idempotent payment reports, reversals.

Lock order, the same everywhere (and in the daily ageing, cases/ageing.py): the account, then its
``AccountBalance``, then promises, instalments and plans, then the audit chain head (audit_log last).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from cases.models import Instalment, OverdueAccount, Payment, PromiseToPay, RepaymentPlan, User
from compliance.audit import audit_log

from .models import (
    PARTS,
    ZERO,
    AccountBalance,
    AllocationOrder,
    CommissionEntry,
    CommissionPlan,
    PaymentAllocation,
    PaymentReversal,
    Settlement,
    SettlementEntry,
    SettlementRule,
    settlement_floor,
)

CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def allocation_order_in_force(*, lender_id: int, at: datetime | None = None) -> tuple[list[str], int]:
    """(order, version) of the lender's allocation order in force at ``at``; version 0 is the platform default."""
    row = (AllocationOrder.objects.filter(lender_id=lender_id, effective_from__lte=at or timezone.now())
           .order_by("-effective_from", "-version").values_list("order", "version").first())
    if row is None:
        return list(settings.FINANCE_DEFAULT_ALLOCATION_ORDER), 0
    return list(row[0]), row[1]


def allocation_order_publish(*, actor: User | None, lender_id: int, order: list[str],
                             effective_from: datetime) -> AllocationOrder:
    with transaction.atomic():
        last = AllocationOrder.objects.select_for_update().filter(lender_id=lender_id).order_by("-version").first()
        row = AllocationOrder(lender_id=lender_id, version=(last.version + 1) if last else 1, order=order,
                              effective_from=effective_from)
        row.full_clean()
        row.save()
        audit_log(action="finance.allocation_order.published", actor=actor, lender_id=lender_id, subject=row,
                  data={"version": row.version, "order": order, "effective_from": effective_from})
        return row


def split(*, amount: Decimal, parts: dict[str, Decimal], order: list[str]) -> tuple[dict[str, Decimal], Decimal]:
    """Pure: pay ``parts`` in ``order`` with ``amount``; return (paid per part, unapplied remainder)."""
    remaining, paid = cents(amount), dict.fromkeys(PARTS, ZERO)
    for part in order:
        take = min(remaining, parts[part])
        paid[part], remaining = take, remaining - take
    return paid, remaining


def initial_parts(*, account: OverdueAccount, balance: Decimal) -> dict[str, Decimal]:
    """The parts an account starts with: those its placement file gave (``extra["balance_parts"]``, written by
    both placement pipelines) with the rest of ``balance`` as principal; else all principal. Should the balance
    have dropped below the placed parts since, the difference comes off in reverse allocation order."""
    parts = {**dict.fromkeys(PARTS, ZERO), "principal": balance}
    placed = (account.extra or {}).get("balance_parts") if isinstance(account.extra, dict) else None
    if not placed:
        return parts
    try:
        given = {p: cents(Decimal(str(placed.get(p, "0")))) for p in ("interest", "fees", "costs")}
    except ArithmeticError:  # hand-edited extra: fall back to all principal rather than fail a payment
        return parts
    if any(v < 0 for v in given.values()):
        return parts
    over = sum(given.values(), ZERO) - balance
    if over > 0:
        order, _v = allocation_order_in_force(lender_id=account.lender_id)
        cut, _rest = split(amount=over, parts={**given, "principal": ZERO}, order=list(reversed(order)))
        given = {p: given[p] - cut[p] for p in given}
    return {**given, "principal": balance - sum(given.values(), ZERO)}


def _balance_locked(*, account: OverdueAccount, balance: Decimal) -> AccountBalance:
    """The account's parts, locked (the account must already be locked by the caller).

    Created on first use with ``initial_parts`` (the placement's parts, else all principal). If the lender
    changed the balance since
    (a placement update), the parts follow it: an increase is principal, a decrease comes off the parts in
    reverse allocation order; the placed amounts move with it so the invariant keeps holding.
    """
    ab = AccountBalance.objects.select_for_update().filter(account_id=account.pk).first()
    if ab is None:
        start = initial_parts(account=account, balance=balance)
        ab = AccountBalance(account=account, currency=account.currency, **start,
                            **{f"placed_{p}": v for p, v in start.items()})
        ab.full_clean(validate_unique=False)
        ab.save(force_insert=True)
        return ab
    diff = balance - ab.total
    if diff:
        if diff > 0:
            ab.principal += diff
            ab.placed_principal += diff
        else:
            order, _v = allocation_order_in_force(lender_id=account.lender_id)
            cut, _rest = split(amount=-diff, parts=ab.parts(), order=list(reversed(order)))
            for part, value in cut.items():
                setattr(ab, part, getattr(ab, part) - value)
                setattr(ab, f"placed_{part}", getattr(ab, f"placed_{part}") - value)
        ab.save()
        audit_log(action="finance.balance.resynced", lender_id=account.lender_id, subject=account,
                  account_id=account.pk, borrower_id=account.borrower_id, data={"difference": diff})
    return ab


def payment_allocate(*, payment: Payment, account: OverdueAccount, balance_before: Decimal,
                     promise: PromiseToPay | None = None, plan_applied: dict | None = None) -> PaymentAllocation:
    """Allocate a payment across the balance parts by the lender's order, and keep what the payment did to the
    promise and the plan so a reversal can undo it. Called by ``cases.services.payment_record`` inside its
    transaction, with the account locked, before its audit event."""
    ab = _balance_locked(account=account, balance=balance_before)
    order, version = allocation_order_in_force(lender_id=account.lender_id, at=payment.paid_at)
    paid, unapplied = split(amount=payment.amount, parts=ab.parts(), order=order)
    for part, value in paid.items():
        setattr(ab, part, getattr(ab, part) - value)
    ab.save()
    allocation = PaymentAllocation(
        payment=payment, lender_id=account.lender_id, account=account, currency=payment.currency,
        amount=cents(payment.amount), unapplied=unapplied, order=order, order_version=version,
        promise=promise, promise_credit=cents(payment.amount) if promise is not None else ZERO,
        instalments=[{"instalment_id": i["instalment_id"], "applied": str(i["applied"])}
                     for i in (plan_applied or {}).get("instalments", [])],
        plan_completed=bool((plan_applied or {}).get("completed")), **paid,
    )
    allocation.full_clean(validate_unique=False)
    allocation.save(force_insert=True)
    audit_log(action="finance.payment.allocated", actor=payment.recorded_by, lender_id=account.lender_id,
              subject=payment, account_id=account.pk, borrower_id=account.borrower_id,
              data={"amount": payment.amount, "currency": payment.currency, "order_version": version,
                    **{p: paid[p] for p in PARTS}, "unapplied": unapplied})
    _commission_earn(account=account, allocation=allocation)
    _settlement_paid_check(account=account, ab=ab, payment=payment)
    return allocation


# ---------------------------------------------------------------------------------------------
# Payments reported with an external reference (lender API, files): idempotent


class PaymentConflict(Exception):
    """The external reference is already used by a different payment."""

    def __init__(self, allocation: PaymentAllocation):
        super().__init__(_("Reference %(ref)r is already used by payment %(id)s.") % {
            "ref": allocation.external_ref, "id": allocation.pk})
        self.allocation = allocation


def _same(allocation: PaymentAllocation, *, account: OverdueAccount, amount: Decimal, paid_at: datetime) -> bool:
    return (allocation.account_id == account.pk and allocation.amount == cents(amount)
            and allocation.payment.paid_at == paid_at)


def payment_receive(*, actor: User | None, account: OverdueAccount, external_ref: str, amount: Decimal,
                    paid_at: datetime, method: str = "", source: str = "lender") -> tuple[Payment, bool]:
    """Record a payment reported under ``external_ref``; (payment, created). Replaying the same report returns
    the first payment; the same reference with other details raises PaymentConflict."""
    from cases.services import payment_record

    external_ref = external_ref.strip()
    if not external_ref:
        raise ValidationError({"external_ref": _("An external reference is required.")})
    if amount != cents(amount):
        raise ValidationError({"amount": _("Amounts are in whole cents.")})

    def existing() -> PaymentAllocation | None:
        return (PaymentAllocation.objects.select_related("payment")
                .filter(lender_id=account.lender_id, external_ref=external_ref).first())

    try:
        with transaction.atomic():
            # The account lock serialises two reports of the same payment; the unique constraint catches
            # the same reference reported on two accounts at once.
            OverdueAccount.objects.select_for_update().only("pk").get(pk=account.pk)
            found = existing()
            if found is None:
                payment = payment_record(actor=actor, account=account, amount=amount, paid_at=paid_at,
                                         method=method, reference=external_ref)
                PaymentAllocation.objects.filter(pk=payment.pk).update(external_ref=external_ref, source=source)
                return payment, True
    except IntegrityError:
        found = existing()
        if found is None:
            raise
    if not _same(found, account=account, amount=amount, paid_at=paid_at):
        raise PaymentConflict(found)
    return found.payment, False


# ---------------------------------------------------------------------------------------------
# Reversals


def _instalments_undo(*, allocation: PaymentAllocation, today) -> tuple[list, dict | None]:
    entries = {int(i["instalment_id"]): Decimal(i["applied"]) for i in allocation.instalments}
    if not entries:
        return [], None
    undone, plan_ids = [], set()
    for inst in Instalment.objects.select_for_update(of=("self",)).filter(pk__in=entries).order_by("due_date", "seq"):
        applied = min(entries[inst.pk], inst.paid_amount)
        inst.paid_amount -= applied
        before = inst.status
        if inst.status == Instalment.Status.PAID and inst.paid_amount < inst.amount:
            inst.status = Instalment.Status.DUE if inst.due_date >= today else Instalment.Status.MISSED
        inst.save(update_fields=["paid_amount", "status"])
        plan_ids.add(inst.plan_id)
        undone.append({"instalment_id": inst.pk, "applied": applied, "status_from": before, "status_to": inst.status})
    plan_change = None
    for plan in RepaymentPlan.objects.filter(pk__in=plan_ids).order_by("pk"):
        missed = plan.instalments.filter(status=Instalment.Status.MISSED).exists()
        open_left = plan.instalments.exclude(status=Instalment.Status.PAID).exists()
        target = plan.status
        if plan.status == RepaymentPlan.Status.COMPLETED and open_left:
            target = RepaymentPlan.Status.BROKEN if missed else RepaymentPlan.Status.ACTIVE
        elif plan.status == RepaymentPlan.Status.ACTIVE and missed:
            target = RepaymentPlan.Status.BROKEN
        if target != plan.status:
            plan_change = {"plan_id": plan.pk, "from": plan.status, "to": target}
            RepaymentPlan.objects.filter(pk=plan.pk).update(status=target)
    return undone, plan_change


def _promise_undo(*, allocation: PaymentAllocation, today) -> dict | None:
    if allocation.promise_id is None or not allocation.promise_credit:
        return None
    promise = PromiseToPay.objects.select_for_update().get(pk=allocation.promise_id)
    before = promise.status
    promise.paid_amount = max(ZERO, promise.paid_amount - allocation.promise_credit)
    if promise.status == PromiseToPay.Status.KEPT and promise.paid_amount < promise.amount:
        promise.status = PromiseToPay.Status.OPEN if promise.due_date >= today else PromiseToPay.Status.BROKEN
    promise.save(update_fields=["paid_amount", "status"])
    return {"promise_id": promise.pk, "credit": allocation.promise_credit, "status_from": before,
            "status_to": promise.status}


def payment_reverse(*, payment: Payment, actor: User | None, reason: str, note: str = "") -> tuple[PaymentReversal, bool]:
    """Undo a payment: its allocation to the parts, the account balance, the plan instalments and the promise
    credit; audited. Idempotent: a payment is reversed once; again returns (the reversal, False)."""
    if reason not in PaymentReversal.Reason.values:
        raise ValidationError({"reason": _("Unknown reason %(reason)r.") % {"reason": reason}})
    today = timezone.localdate()
    with transaction.atomic():
        account = OverdueAccount.objects.select_for_update().get(pk=payment.account_id)
        done = PaymentReversal.objects.filter(pk=payment.pk).first()
        if done is not None:
            return done, False
        allocation = PaymentAllocation.objects.filter(pk=payment.pk).first()
        if allocation is None:
            raise ValidationError(_("This payment was recorded before allocations existed and cannot be reversed here."))
        ab = _balance_locked(account=account, balance=account.balance)
        reopened = _settlement_reopen(account=account, ab=ab, payment=payment, actor=actor)
        for part in PARTS:
            setattr(ab, part, getattr(ab, part) + getattr(allocation, part))
        ab.save()
        promise = _promise_undo(allocation=allocation, today=today)
        instalments, plan = _instalments_undo(allocation=allocation, today=today)
        account.balance += allocation.allocated
        status = None
        if account.balance > 0 and account.status in (OverdueAccount.Status.PAID, OverdueAccount.Status.SETTLED,
                                                        OverdueAccount.Status.PLAN, OverdueAccount.Status.PROMISE):
            if account.plans.filter(status=RepaymentPlan.Status.ACTIVE).exists():
                target = OverdueAccount.Status.PLAN
            elif account.promises.filter(status=PromiseToPay.Status.OPEN).exists():
                target = OverdueAccount.Status.PROMISE
            else:
                target = OverdueAccount.Status.IN_CONTACT
            if target != account.status:
                status, account.status = {"from": account.status, "to": target}, target
        account.save(update_fields=["balance", "status", "updated_at"])
        commission_back = _commission_reverse(payment=payment)
        reversal = PaymentReversal(
            payment=payment, lender_id=account.lender_id, account=account, amount=payment.amount,
            currency=payment.currency, reason=reason, note=note[:500], reversed_by=actor,
            undone={"parts": {p: str(getattr(allocation, p)) for p in PARTS},
                    "instalments": [{**i, "applied": str(i["applied"])} for i in instalments],
                    "promise": {**promise, "credit": str(promise["credit"])} if promise else None,
                    "plan": plan, "status": status, "settlement_reopened": reopened,
                    "commission_reversed": commission_back},
        )
        reversal.full_clean(validate_unique=False)
        reversal.save(force_insert=True)
        audit_log(action="finance.payment.reversed", actor=actor, lender_id=account.lender_id, subject=payment,
                  account_id=account.pk, borrower_id=account.borrower_id,
                  data={"amount": payment.amount, "currency": payment.currency, "reason": reason,
                        "external_ref": allocation.external_ref, "balance_after": account.balance, **reversal.undone})
        return reversal, True


# ---------------------------------------------------------------------------------------------
# Settlements


@dataclass(frozen=True)
class SettlementTerms:
    min_percent: dict
    default_min_percent: Decimal
    max_instalments: int
    version: int

    def floor_percent(self, bucket: str) -> Decimal:
        return Decimal(str(self.min_percent.get(bucket, self.default_min_percent)))


def settlement_terms_in_force(*, lender_id: int, at: datetime | None = None) -> SettlementTerms:
    row = (SettlementRule.objects.filter(lender_id=lender_id, effective_from__lte=at or timezone.now())
           .order_by("-effective_from", "-version").first())
    if row is None:
        d = settings.FINANCE_DEFAULT_SETTLEMENT_RULES
        return SettlementTerms(dict(d["min_percent"]), Decimal(str(d["default_min_percent"])), d["max_instalments"], 0)
    return SettlementTerms(dict(row.min_percent), row.default_min_percent, row.max_instalments, row.version)


def settlement_rule_publish(*, actor: User | None, lender_id: int, min_percent: dict, default_min_percent: Decimal,
                            max_instalments: int, effective_from: datetime) -> SettlementRule:
    with transaction.atomic():
        last = SettlementRule.objects.select_for_update().filter(lender_id=lender_id).order_by("-version").first()
        row = SettlementRule(lender_id=lender_id, version=(last.version + 1) if last else 1, min_percent=min_percent,
                             default_min_percent=default_min_percent, max_instalments=max_instalments,
                             effective_from=effective_from)
        row.full_clean()
        row.save()
        audit_log(action="finance.settlement_rule.published", actor=actor, lender_id=lender_id, subject=row,
                  data={"version": row.version, "min_percent": min_percent, "default_min_percent": default_min_percent,
                        "max_instalments": max_instalments, "effective_from": effective_from})
        return row


def _audit_settlement(action: str, settlement: Settlement, actor: User | None, **data) -> None:
    account = settlement.account
    audit_log(action=f"finance.settlement.{action}", actor=actor, lender_id=account.lender_id, subject=settlement,
              account_id=account.pk, borrower_id=account.borrower_id,
              data={"amount": settlement.amount, "currency": settlement.currency, "percent": settlement.percent,
                    "floor_percent": settlement.floor_percent, **data})


@dataclass(frozen=True)
class SettlementCheck:
    """How an amount for less than the balance, paid in ``instalments``, stands against the lender's terms."""

    terms: SettlementTerms
    bucket: str
    balance: Decimal
    amount: Decimal
    instalments: int
    floor_percent: Decimal
    floor_amount: Decimal
    percent: Decimal

    @property
    def below_floor(self) -> bool:
        return self.amount < self.floor_amount

    @property
    def over_max_instalments(self) -> bool:
        return self.instalments > self.terms.max_instalments

    @property
    def needs_approval(self) -> bool:
        return self.below_floor or self.over_max_instalments


def settlement_check(*, account: OverdueAccount, amount: Decimal, instalments: int) -> SettlementCheck:
    """The lender's terms in force for ``account`` (its bucket and balance now) applied to ``amount``."""
    terms = settlement_terms_in_force(lender_id=account.lender_id)
    floor = terms.floor_percent(account.bucket)
    return SettlementCheck(
        terms=terms, bucket=account.bucket, balance=account.balance, amount=amount, instalments=instalments,
        floor_percent=floor, floor_amount=settlement_floor(balance=account.balance, percent=floor),
        percent=(amount * 100 / account.balance).quantize(CENT, rounding=ROUND_HALF_UP))


def _settlement_new(*, actor: User, account: OverdueAccount, check: SettlementCheck,
                    instalments: list[tuple[date, Decimal]], plan: RepaymentPlan | None = None,
                    status: str = Settlement.Status.PENDING) -> Settlement:
    """The settlement row for ``check`` (an offer, or a plan for less than the balance), saved."""
    settlement = Settlement(
        lender_id=account.lender_id, account=account, amount=check.amount, currency=account.currency,
        balance_at_offer=check.balance, percent=check.percent, bucket=check.bucket, floor_percent=check.floor_percent,
        rule_version=check.terms.version, max_instalments=check.terms.max_instalments,
        instalments=[{"due_date": d.isoformat(), "amount": str(a)} for d, a in instalments],
        needs_approval=check.needs_approval, offered_by=actor, plan=plan, status=status,
        approved_at=timezone.now() if status == Settlement.Status.APPROVED else None,
    )
    settlement.full_clean(validate_unique=False, validate_constraints=False)
    settlement.save()
    return settlement


def settlement_for_plan(*, actor: User, account: OverdueAccount, plan: RepaymentPlan, check: SettlementCheck,
                        instalments: list[tuple[date, Decimal]]) -> Settlement:
    """Inside ``cases.services.repayment_plan_create`` (account locked, plan saved): a plan for less than the
    balance is a settlement. Within the lender's terms (floor for the bucket, maximum instalments) it is approved at
    once and the plan is active; otherwise it waits in the supervisors' queue and the plan is pending. Paid, the
    account is settled and the rest written off like any settlement (``_settlement_paid_check``)."""
    needs_approval = check.needs_approval
    settlement = _settlement_new(
        actor=actor, account=account, check=check, instalments=instalments, plan=plan,
        status=Settlement.Status.PENDING if needs_approval else Settlement.Status.APPROVED)
    _audit_settlement("offered", settlement, actor, source="plan", plan_id=plan.pk, needs_approval=needs_approval,
                      below_floor=check.below_floor, over_max_instalments=check.over_max_instalments,
                      max_instalments=check.terms.max_instalments, rule_version=check.terms.version,
                      floor_amount=check.floor_amount, balance=check.balance, instalments=settlement.instalments)
    if not needs_approval:
        _audit_settlement("approved", settlement, actor, automatic=True, plan_id=plan.pk)
    return settlement


def settlements_withdraw(*, actor: User | None, account: OverdueAccount, statuses: list[str], plan_id: int,
                         keep_id: int | None = None) -> list[int]:
    """Inside a plan's transaction (account locked): the open settlements that plan ``plan_id`` supersedes are
    withdrawn, audited. Their ids."""
    withdrawn = []
    for settlement in (Settlement.objects.select_for_update().filter(account_id=account.pk, status__in=statuses)
                       .exclude(pk=keep_id).order_by("pk")):
        settlement.account, before = account, settlement.status
        settlement.status, settlement.decided_by, settlement.decided_at = Settlement.Status.WITHDRAWN, actor, timezone.now()
        settlement.decision_note = f"Replaced by repayment plan {plan_id}."
        settlement.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        _audit_settlement("withdrawn", settlement, actor, status_from=before, replaced_by_plan=plan_id,
                          settlement_plan_id=settlement.plan_id)
        withdrawn.append(settlement.pk)
    return withdrawn


def _settlement_activate(*, settlement: Settlement, actor: User) -> None:
    """An approved settlement is paid by a repayment plan of its instalments: an offer's plan is made now; a plan
    for less than the balance that waited for this approval becomes active."""
    from cases.services import repayment_plan_activate, repayment_plan_create

    if settlement.plan_id is None:
        settlement.plan = repayment_plan_create(
            actor=actor, account=settlement.account, total_amount=settlement.amount, settlement=settlement,
            instalments=[(date.fromisoformat(i["due_date"]), Decimal(i["amount"])) for i in settlement.instalments])
    else:
        repayment_plan_activate(actor=actor, plan=settlement.plan)
    settlement.status, settlement.approved_at = Settlement.Status.APPROVED, timezone.now()


def settlement_offer(*, actor: User, account: OverdueAccount, amount: Decimal,
                     instalments: list[tuple[date, Decimal]]) -> Settlement:
    """Offer to close ``account`` for ``amount`` (less than its balance), paid by ``instalments``. Within the lender's
    terms (at or above the floor for the account's bucket, no more than its maximum instalments) it is approved at
    once; outside them it waits for a supervisor, like a plan for less than the balance."""
    with transaction.atomic():
        account = OverdueAccount.objects.select_for_update().get(pk=account.pk)
        errors = {}
        if not account.is_open:
            errors["amount"] = _("This account is closed.")
        elif amount <= 0 or amount != cents(amount):
            errors["amount"] = _("The settlement amount must be positive, in whole cents.")
        elif amount >= account.balance:
            errors["amount"] = _("A settlement is for less than the outstanding balance.")
        if not instalments:
            errors["instalments"] = _("A settlement needs at least one instalment.")
        elif sum((a for _d, a in instalments), ZERO) != amount:
            errors["instalments"] = _("The instalments must add up to the settlement amount.")
        if errors:
            raise ValidationError(errors)
        if Settlement.objects.filter(account=account, status__in=Settlement.OPEN).exists():
            raise ValidationError(_("This account already has an open settlement."))
        check = settlement_check(account=account, amount=amount, instalments=len(instalments))
        settlement = _settlement_new(actor=actor, account=account, check=check, instalments=instalments)
        _audit_settlement("offered", settlement, actor, needs_approval=settlement.needs_approval,
                          floor_amount=check.floor_amount, balance=account.balance, instalments=settlement.instalments)
        if not settlement.needs_approval:
            _settlement_activate(settlement=settlement, actor=actor)
            settlement.save()
            _audit_settlement("approved", settlement, actor, automatic=True)
        return settlement


def _settlement_decide(*, actor: User, settlement: Settlement) -> Settlement:
    if not actor.is_supervisor:
        raise PermissionError("Only supervisors decide settlements.")
    account = OverdueAccount.objects.select_for_update().get(pk=settlement.account_id)
    settlement = Settlement.objects.select_for_update().get(pk=settlement.pk)
    settlement.account = account
    if settlement.status != Settlement.Status.PENDING:
        raise ValidationError(_("This settlement has already been decided."))
    return settlement


def settlement_approve(*, actor: User, settlement: Settlement, note: str = "") -> Settlement:
    with transaction.atomic():
        settlement = _settlement_decide(actor=actor, settlement=settlement)
        _settlement_activate(settlement=settlement, actor=actor)
        settlement.decided_by, settlement.decided_at, settlement.decision_note = actor, timezone.now(), note[:500]
        settlement.save()
        _audit_settlement("approved", settlement, actor, note=note[:500])
        return settlement


def settlement_decline(*, actor: User, settlement: Settlement, note: str = "") -> Settlement:
    """Declined; a plan for less than the balance that waited for this decision is cancelled."""
    from cases.services import repayment_plan_decline

    with transaction.atomic():
        settlement = _settlement_decide(actor=actor, settlement=settlement)
        if settlement.plan_id is not None:
            repayment_plan_decline(actor=actor, plan=settlement.plan, note=note)
        settlement.status = Settlement.Status.DECLINED
        settlement.decided_by, settlement.decided_at, settlement.decision_note = actor, timezone.now(), note[:500]
        settlement.save()
        _audit_settlement("declined", settlement, actor, note=note[:500])
        return settlement


def _settlement_paid_check(*, account: OverdueAccount, ab: AccountBalance, payment: Payment) -> None:
    """Inside payment_allocate: once the payments since approval (not reversed) reach the settlement amount, the
    account is settled and what remains of each part is written off (audited; the lender sees it)."""
    settlement = (Settlement.objects.select_for_update()
                  .filter(account_id=account.pk, status=Settlement.Status.APPROVED).first())
    if settlement is None:
        return
    paid = sum(PaymentAllocation.objects.filter(account_id=account.pk, created_at__gte=settlement.approved_at)
               .exclude(pk__in=PaymentReversal.objects.filter(account_id=account.pk).values("pk"))
               .values_list("amount", flat=True), ZERO)
    if paid < settlement.amount:
        return
    parts = ab.parts()
    settlement.written_off_parts = {p: str(v) for p, v in parts.items()}
    settlement.written_off = sum(parts.values(), ZERO)
    settlement.status, settlement.settled_at, settlement.settling_payment = Settlement.Status.SETTLED, timezone.now(), payment
    settlement.save()
    # What the lender's statement reports (finance/statements.py): append-only, stamped when settled.
    SettlementEntry.objects.create(
        settlement=settlement, lender_id=settlement.lender_id, account_id=account.pk, payment=payment,
        kind=SettlementEntry.Kind.SETTLED, currency=settlement.currency, amount=settlement.amount,
        written_off=settlement.written_off, created_at=settlement.settled_at)
    for part in PARTS:
        setattr(ab, part, ZERO)
    ab.save()
    account.balance, account.status = ZERO, OverdueAccount.Status.SETTLED
    account.save(update_fields=["balance", "status", "updated_at"])
    _audit_settlement("settled", settlement, payment.recorded_by, paid=paid, written_off=settlement.written_off,
                      written_off_parts=settlement.written_off_parts, payment_id=payment.pk)


def _settlement_reopen(*, account: OverdueAccount, ab: AccountBalance, payment: Payment, actor: User | None) -> int | None:
    """Inside payment_reverse: the payment that settled the account bounced, so the write-off is undone."""
    settlement = (Settlement.objects.select_for_update()
                  .filter(account_id=account.pk, status=Settlement.Status.SETTLED, settling_payment=payment).first())
    if settlement is None:
        return None
    for part, value in settlement.written_off_parts.items():
        setattr(ab, part, getattr(ab, part) + Decimal(value))
    account.balance += settlement.written_off
    _audit_settlement("reopened", settlement, actor, written_off_restored=settlement.written_off, payment_id=payment.pk)
    # Reported on the lender's next statement; the one that reported it settled stays as issued.
    SettlementEntry.objects.create(
        settlement=settlement, lender_id=settlement.lender_id, account_id=account.pk, payment=payment,
        kind=SettlementEntry.Kind.REOPENED, currency=settlement.currency, amount=settlement.amount,
        written_off=-settlement.written_off, created_at=timezone.now())
    settlement.status, settlement.settled_at, settlement.settling_payment = Settlement.Status.APPROVED, None, None
    settlement.written_off, settlement.written_off_parts = ZERO, {}
    settlement.save()
    return settlement.pk


# ---------------------------------------------------------------------------------------------
# Commission


def commission_plan_in_force(*, lender_id: int, at: datetime | None = None) -> CommissionPlan | None:
    return (CommissionPlan.objects.filter(lender_id=lender_id, effective_from__lte=at or timezone.now())
            .order_by("-effective_from", "-version").first())


def commission_plan_publish(*, actor: User | None, lender_id: int, percent_by_bucket: dict, default_percent: Decimal,
                            flat_fee: Decimal, remit_net: bool, effective_from: datetime) -> CommissionPlan:
    with transaction.atomic():
        last = CommissionPlan.objects.select_for_update().filter(lender_id=lender_id).order_by("-version").first()
        row = CommissionPlan(lender_id=lender_id, version=(last.version + 1) if last else 1,
                             percent_by_bucket=percent_by_bucket, default_percent=default_percent, flat_fee=flat_fee,
                             remit_net=remit_net, effective_from=effective_from)
        row.full_clean()
        row.save()
        audit_log(action="finance.commission_plan.published", actor=actor, lender_id=lender_id, subject=row,
                  data={"version": row.version, "percent_by_bucket": percent_by_bucket, "default_percent": default_percent,
                        "flat_fee": flat_fee, "remit_net": remit_net, "effective_from": effective_from})
        return row


def bucket_at_placement(account: OverdueAccount) -> str:
    from cases.services import bucket_for, days_past_due_on

    return bucket_for(days_past_due_on(due_date=account.due_date, today=timezone.localdate(account.placed_at)))


def _commission_earn(*, account: OverdueAccount, allocation: PaymentAllocation) -> None:
    """Commission on what the payment paid off (not on an overpayment), by the plan in force when it was paid."""
    plan = commission_plan_in_force(lender_id=account.lender_id, at=allocation.payment.paid_at)
    if plan is None or not allocation.allocated:
        return
    bucket = bucket_at_placement(account)
    percent = Decimal(str(plan.percent_by_bucket.get(bucket, plan.default_percent)))
    flat = ZERO
    if plan.flat_fee:
        earned = CommissionEntry.objects.filter(account_id=account.pk, kind=CommissionEntry.Kind.EARNED, flat_fee__gt=0)
        taken_back = CommissionEntry.objects.filter(account_id=account.pk, kind=CommissionEntry.Kind.REVERSED,
                                                    flat_fee__lt=0)
        if earned.count() == taken_back.count():  # no flat fee standing for this account
            flat = plan.flat_fee
    CommissionEntry.objects.create(
        payment_id=allocation.pk, lender_id=account.lender_id, account=account, kind=CommissionEntry.Kind.EARNED,
        currency=allocation.currency, base=allocation.allocated, percent=percent, bucket=bucket,
        plan_version=plan.version, commission=cents(allocation.allocated * percent / 100), flat_fee=flat)


def _commission_reverse(*, payment: Payment) -> str | None:
    earned = CommissionEntry.objects.filter(payment=payment, kind=CommissionEntry.Kind.EARNED).first()
    if earned is None:
        return None
    back = CommissionEntry.objects.create(
        payment=payment, lender_id=earned.lender_id, account_id=earned.account_id, kind=CommissionEntry.Kind.REVERSED,
        currency=earned.currency, base=-earned.base, percent=earned.percent, bucket=earned.bucket,
        plan_version=earned.plan_version, commission=-earned.commission, flat_fee=-earned.flat_fee)
    return str(back.total)
