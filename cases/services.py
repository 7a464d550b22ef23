"""Writes on cases. Every state change writes its audit event in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from compliance import rules
from compliance.audit import audit_log
from compliance.selectors import decision_as_dict, policy_in_force
from compliance.services import incident_open
from finance import services as finance_services
from scoring.tasks import account_score_refresh_enqueue
from servicing import clock  # controllable "now" (tests move it in every process)

from .gate import borrower_facts, default_phone, person_lock, person_snapshot
from .models import (
    _GATE,
    Borrower,
    Callback,
    ContactAttempt,
    ContactAttemptAccount,
    Instalment,
    Note,
    OverdueAccount,
    Payment,
    PromiseToPay,
    RepaymentPlan,
    User,
)
from .phones import phone_e164

if TYPE_CHECKING:
    from finance.models import Settlement

# A call logged a little after the fact is normal; one logged in the future is not.
MAX_CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class ContactRefused(Exception):
    """The compliance check refused the outreach. Nothing was recorded; the refusal was audited."""

    decision: rules.Decision

    def as_dict(self) -> dict:
        return decision_as_dict(self.decision)

    def __str__(self) -> str:
        return "; ".join(v.message for v in self.decision.violations)


def _validate_outreach(*, channel: str, outcome: str, direction: str, party: str, occurred_at: datetime) -> None:
    errors = {}
    if channel not in ContactAttempt.Channel.values:
        errors["channel"] = _("Unknown channel %(value)s; use one of %(choices)s.") % {
            "value": repr(channel), "choices": ", ".join(ContactAttempt.Channel.values)}
    if outcome not in ContactAttempt.Outcome.values:
        errors["outcome"] = _("Unknown outcome %(value)s; use one of %(choices)s.") % {
            "value": repr(outcome), "choices": ", ".join(ContactAttempt.Outcome.values)}
    if direction not in ContactAttempt.Direction.values:
        errors["direction"] = _("Unknown direction %(value)s.") % {"value": repr(direction)}
    if party not in ContactAttempt.Party.values:
        errors["party"] = _("Unknown party %(value)s.") % {"value": repr(party)}
    if timezone.is_naive(occurred_at):
        errors["occurred_at"] = _("Time must include a time zone offset.")
    elif occurred_at > clock.now() + MAX_CLOCK_SKEW:
        errors["occurred_at"] = _("An outreach cannot be logged in the future.")
    if errors:
        raise ValidationError(errors)


def _validate_second_collector(*, second_collector: User | None, actor: User | None, channel: str) -> None:
    if second_collector is None:
        return
    if channel != ContactAttempt.Channel.VISIT:
        raise ValidationError({"second_collector": _("Only a field visit has a second collector.")})
    if not second_collector.is_active or second_collector.role not in (User.Role.AGENT, User.Role.SUPERVISOR):
        raise ValidationError({"second_collector": _("The second collector must be an active agent or supervisor.")})
    if actor is not None and second_collector.pk == actor.pk:
        raise ValidationError({"second_collector": _("The second collector must be someone else.")})


#: An outreach logged more than this after it happened is a *report* of a contact that took place:
#: judged by the policy then in force and always stored (a breach is flagged, never dropped).
PRESENT_WINDOW = timedelta(minutes=5)
#: A started attempt not completed within this closes as "unreported" (it still counts as placed).
STARTED_TIMEOUT = timedelta(minutes=30)


@dataclass
class _Gate:
    """What the gate saw inside its transaction (the person locked)."""

    borrower: Borrower
    account: OverdueAccount
    others: list[OverdueAccount]
    decision: rules.Decision
    at: datetime
    phone: str
    address: str


def _other_accounts(*, account: OverdueAccount, accounts) -> list[OverdueAccount]:
    """Further debts of the same borrower and lender that one outreach is also about."""
    ids = sorted({a.pk if isinstance(a, OverdueAccount) else int(a) for a in accounts or ()} - {account.pk})
    if not ids:
        return []
    found = list(OverdueAccount.objects.filter(pk__in=ids, borrower_id=account.borrower_id, lender_id=account.lender_id))
    if len(found) != len(ids):
        raise ValidationError({"accounts": _("An outreach can only cover other debts of the same borrower and lender.")})
    return found


def _address(*, borrower: Borrower, channel: str, phone: str, email: str) -> tuple[str, str]:
    """(E.164 phone, address the message goes to) for the channel; the borrower's first by default."""
    if channel in ("call", "sms"):
        phone = phone_e164(phone or default_phone(borrower=borrower, channel=channel), jurisdiction=borrower.jurisdiction)
        return phone, phone if channel == "sms" else ""
    if channel == "email":
        return "", (email or (borrower.emails[0] if borrower.emails else "")).strip().lower()
    return "", ""


def _gate(
    *, account: OverdueAccount, accounts, channel: str, party: str, direction: str, phone: str, email: str,
    occurred_at: datetime | None, outcome: str, collectors: int,
) -> _Gate:
    """Lock the person, then judge the outreach against the history on both sides of its time.

    Must run inside a transaction. Every lender's record of the same person takes the same lock
    (PostgreSQL advisory lock on the person key, then the borrower row), so two agents of two
    lenders cannot together exceed a cap that counts per person. "Now" is read after the lock:
    an attempt stamped before a colleague's, but written after it, would escape the check.
    """
    borrower = Borrower.objects.get(pk=account.borrower_id)
    person_lock(key=borrower.person)
    borrower = Borrower.objects.select_for_update().get(pk=account.borrower_id)
    account = OverdueAccount.objects.select_related("lender").get(pk=account.pk)
    others = _other_accounts(account=account, accounts=accounts)
    at = occurred_at or clock.now()
    phone, address = _address(borrower=borrower, channel=channel, phone=phone, email=email)
    policy = policy_in_force(code=borrower.jurisdiction, at=at, fresh=True)
    window = rules.history_window(policy)
    holds, windows, history = person_snapshot(borrower=borrower, since=at - window, until=at + window)
    decision = rules.evaluate(
        policy=policy,
        facts=borrower_facts(borrower=borrower, person_holds=holds, person_windows=windows),
        history=history,
        proposal=rules.Proposal(
            at=at, channel=channel, account_id=account.pk, accounts=tuple(a.pk for a in others), party=party,
            direction=direction, phone=phone, address=address, collectors=collectors, outcome=outcome,
            borrower_id=borrower.pk,
        ),
    )
    return _Gate(borrower=borrower, account=account, others=others, decision=decision, at=at, phone=phone,
                 address=address)


def _attempt_insert(*, g: _Gate, actor: User | None, channel: str, outcome: str, direction: str, party: str,
                    notes: str, source: str, second_collector: User | None, state: str,
                    breach: list[dict] | None = None) -> ContactAttempt:
    token = _GATE.set(True)
    try:
        attempt = ContactAttempt(
            lender_id=g.account.lender_id, borrower=g.borrower, account=g.account,
            agent=actor if getattr(actor, "is_authenticated", False) else None,
            channel=channel, direction=direction, party=party, outcome=outcome, phone=g.phone,
            occurred_at=g.at, notes=notes, source=source, second_collector=second_collector,
            policy_code=g.decision.policy_code, policy_version=g.decision.policy_version, state=state,
            completed_at=None if state == ContactAttempt.State.STARTED else clock.now(),
            person_key=g.borrower.person_key, other_accounts=[a.pk for a in g.others],
            breach=breach or [], is_breach=bool(breach),
        )
        # The related rows were just read (and locked) by the gate: checking that each exists again would cost
        # four queries per outreach, the hottest write of the platform.
        attempt.full_clean(exclude=["lender", "borrower", "account", "agent", "second_collector"])
        attempt.save()
        ContactAttemptAccount.objects.bulk_create(
            [ContactAttemptAccount(attempt=attempt, account=other) for other in g.others]
        )
    finally:
        _GATE.reset(token)
    return attempt


def _mark_in_contact(*, g: _Gate, outcome: str) -> None:
    if outcome in rules.CONVERSATION_OUTCOMES:
        OverdueAccount.objects.filter(pk__in=[g.account.pk, *(a.pk for a in g.others)],
                                      status__in=("new", "assigned")).update(status=OverdueAccount.Status.IN_CONTACT)


def _refuse(*, g: _Gate, actor: User | None, proposal_data: dict) -> None:
    audit_log(
        action="compliance.contact.blocked", actor=actor, lender_id=g.account.lender_id, subject=g.account,
        account_id=g.account.pk, borrower_id=g.borrower.pk, policy_code=g.decision.policy_code,
        policy_version=g.decision.policy_version, data={**proposal_data, **decision_as_dict(g.decision)},
    )


def _proposal_data(*, g: _Gate | None, channel: str, outcome: str, direction: str, party: str,
                   occurred_at: datetime | None, source: str, second_collector: User | None, others=()) -> dict:
    return {
        "channel": channel, "outcome": outcome, "direction": direction, "party": party,
        "occurred_at": g.at if g else occurred_at, "source": source,
        **({"second_collector": second_collector.get_username()} if second_collector else {}),
        **({"accounts": [a.pk for a in others]} if others else {}),
    }


def contact_attempt_record(
    *,
    account: OverdueAccount,
    actor: User | None,
    channel: str,
    outcome: str,
    direction: str = ContactAttempt.Direction.OUTBOUND,
    party: str = ContactAttempt.Party.BORROWER,
    phone: str = "",
    email: str = "",
    occurred_at: datetime | None = None,
    notes: str = "",
    source: str = ContactAttempt.Source.WEB,
    second_collector: User | None = None,
    accounts=(),
) -> ContactAttempt:
    """The one write path for a contact with its outcome: check, then record or refuse, all audited.

    Two cases, told apart by the time:

    * **Present** (no ``occurred_at``, or within PRESENT_WINDOW of now): outreach the platform makes
      now. The gate decides first: a refusal is audited (``compliance.contact.blocked``) and raised
      as ContactRefused; nothing is recorded.
    * **Reported** (older; or any inbound contact): a contact that already happened. It is judged by
      the policy in force at its time and **always stored**: if it broke a rule it is stored as a
      breach (``is_breach``; counted toward later caps, shown in the timeline) and opens a
      supervisor incident, in the same transaction.

    ``accounts``: further debts of the same borrower the outreach was about (counted for each).
    Raises ContactRefused or ValidationError.
    """
    if occurred_at is not None:
        _validate_outreach(channel=channel, outcome=outcome, direction=direction, party=party, occurred_at=occurred_at)
    else:
        _validate_outreach(channel=channel, outcome=outcome, direction=direction, party=party, occurred_at=clock.now())
    if outcome == ContactAttempt.Outcome.PENDING:
        raise ValidationError({"outcome": _("Give the outcome of the contact.")})
    _validate_second_collector(second_collector=second_collector, actor=actor, channel=channel)
    reported = direction == ContactAttempt.Direction.INBOUND or (
        occurred_at is not None and occurred_at < clock.now() - PRESENT_WINDOW)
    refused: rules.Decision | None = None
    with transaction.atomic():
        g = _gate(account=account, accounts=accounts, channel=channel, party=party, direction=direction, phone=phone,
                  email=email, occurred_at=occurred_at, outcome=outcome, collectors=2 if second_collector else 1)
        data = _proposal_data(g=g, channel=channel, outcome=outcome, direction=direction, party=party,
                              occurred_at=occurred_at, source=source, second_collector=second_collector, others=g.others)
        common = dict(actor=actor, lender_id=g.account.lender_id, account_id=g.account.pk, borrower_id=g.borrower.pk,
                      policy_code=g.decision.policy_code, policy_version=g.decision.policy_version)
        if not g.decision.allowed and not reported:
            _refuse(g=g, actor=actor, proposal_data=data)
            refused = g.decision
        else:
            breach = [] if g.decision.allowed else decision_as_dict(g.decision)["violations"]
            attempt = _attempt_insert(g=g, actor=actor, channel=channel, outcome=outcome, direction=direction,
                                      party=party, notes=notes, source=source, second_collector=second_collector,
                                      state=ContactAttempt.State.COMPLETED, breach=breach)
            _mark_in_contact(g=g, outcome=outcome)
            audit_log(action="cases.contact_attempt.recorded", subject=attempt,
                      data={**data, "attempt_id": attempt.pk, "notes": notes[:500],
                            **({"breach": breach} if breach else {})}, **common)
            if breach:
                incident_open(attempt=attempt, actor=actor, decision=g.decision)
            if source != ContactAttempt.Source.REMINDER:  # an automated message says nothing about the borrower
                account_score_refresh_enqueue(g.account.pk)  # a new outcome moves the score (after commit)
    if refused is not None:
        raise ContactRefused(refused)
    return attempt


def contact_attempt_start(
    *,
    account: OverdueAccount,
    actor: User | None,
    channel: str,
    party: str = ContactAttempt.Party.BORROWER,
    phone: str = "",
    email: str = "",
    notes: str = "",
    source: str = ContactAttempt.Source.WEB,
    second_collector: User | None = None,
    accounts=(),
) -> ContactAttempt:
    """Start an outreach now: the gate decides before the act.

    Allowed: an attempt is recorded in state ``started`` with an unknown outcome, which counts at
    once as whatever restricts the most (two agents cannot both start past a cap); the caller may
    now show the full number or address (``contact_attempt_target``). Refused: audited, ContactRefused.
    Complete it with ``contact_attempt_complete``; left open, it closes as unreported after 30 minutes.
    """
    _validate_outreach(channel=channel, outcome=ContactAttempt.Outcome.PENDING, direction="outbound", party=party,
                       occurred_at=clock.now())
    _validate_second_collector(second_collector=second_collector, actor=actor, channel=channel)
    refused: rules.Decision | None = None
    with transaction.atomic():
        g = _gate(account=account, accounts=accounts, channel=channel, party=party, direction="outbound", phone=phone,
                  email=email, occurred_at=None, outcome="", collectors=2 if second_collector else 1)
        data = _proposal_data(g=g, channel=channel, outcome="", direction="outbound", party=party, occurred_at=None,
                              source=source, second_collector=second_collector, others=g.others)
        if not g.decision.allowed:
            _refuse(g=g, actor=actor, proposal_data=data)
            refused = g.decision
        else:
            attempt = _attempt_insert(g=g, actor=actor, channel=channel, outcome=ContactAttempt.Outcome.PENDING,
                                      direction="outbound", party=party, notes=notes, source=source,
                                      second_collector=second_collector, state=ContactAttempt.State.STARTED)
            audit_log(action="cases.contact_attempt.started", subject=attempt, actor=actor,
                      lender_id=g.account.lender_id, account_id=g.account.pk, borrower_id=g.borrower.pk,
                      policy_code=g.decision.policy_code, policy_version=g.decision.policy_version,
                      data={**data, "attempt_id": attempt.pk, "target": _masked_target(attempt)})
    if refused is not None:
        raise ContactRefused(refused)
    return attempt


def _masked_target(attempt: ContactAttempt) -> str:
    from .selectors import mask_email, mask_phone

    if attempt.channel == "email":
        email = attempt.borrower.emails[0] if attempt.borrower.emails else ""
        return mask_email(email)
    return mask_phone(attempt.phone)


def contact_attempt_complete(*, attempt: ContactAttempt, actor: User | None, outcome: str, notes: str = "") -> ContactAttempt:
    """Give a started attempt its outcome. The start passed the gate for any outcome, so this never
    refuses; an attempt already closed as unreported may still be completed (the truth wins), audited."""
    if outcome not in ContactAttempt.Outcome.values or outcome in (ContactAttempt.Outcome.PENDING,
                                                                    ContactAttempt.Outcome.UNREPORTED):
        raise ValidationError({"outcome": _("Unknown outcome %(value)s; use one of %(choices)s.") % {
            "value": repr(outcome), "choices": ", ".join(o for o in ContactAttempt.Outcome.values
                                                         if o not in ("pending", "unreported"))}})
    with transaction.atomic():
        attempt = ContactAttempt.objects.select_for_update().select_related("account", "borrower").get(pk=attempt.pk)
        if attempt.state == ContactAttempt.State.COMPLETED:
            raise ValidationError({"outcome": _("This outreach was already completed.")})
        before = attempt.state
        attempt.outcome = outcome
        attempt.state = ContactAttempt.State.COMPLETED
        attempt.completed_at = clock.now()
        if notes:
            attempt.notes = notes
        attempt.save(update_fields=["outcome", "state", "completed_at", "notes"])
        g = _Gate(borrower=attempt.borrower, account=attempt.account,
                  others=list(OverdueAccount.objects.filter(pk__in=attempt.other_accounts)),
                  decision=None, at=attempt.occurred_at, phone=attempt.phone, address="")  # type: ignore[arg-type]
        _mark_in_contact(g=g, outcome=outcome)
        audit_log(action="cases.contact_attempt.completed", actor=actor, lender_id=attempt.lender_id, subject=attempt,
                  account_id=attempt.account_id, borrower_id=attempt.borrower_id,
                  data={"attempt_id": attempt.pk, "outcome": outcome, "from_state": before, "notes": notes[:500]})
        account_score_refresh_enqueue(attempt.account_id)
        return attempt


def contact_attempts_close_unreported(*, now: datetime | None = None) -> int:
    """Close started attempts left open past STARTED_TIMEOUT as unreported (each audited). Returns how many."""
    now = now or clock.now()
    ids = list(ContactAttempt.objects.filter(state=ContactAttempt.State.STARTED, occurred_at__lt=now - STARTED_TIMEOUT)
               .order_by("pk").values_list("pk", flat=True)[:1000])
    closed = 0
    for pk in ids:
        with transaction.atomic():
            attempt = ContactAttempt.objects.select_for_update().filter(pk=pk, state=ContactAttempt.State.STARTED).first()
            if attempt is None:
                continue  # completed meanwhile
            attempt.state = ContactAttempt.State.UNREPORTED
            attempt.outcome = ContactAttempt.Outcome.UNREPORTED
            attempt.completed_at = now
            attempt.save(update_fields=["state", "outcome", "completed_at"])
            audit_log(action="cases.contact_attempt.unreported", lender_id=attempt.lender_id, subject=attempt,
                      account_id=attempt.account_id, borrower_id=attempt.borrower_id,
                      data={"attempt_id": attempt.pk, "started_at": attempt.occurred_at,
                            "timeout_minutes": int(STARTED_TIMEOUT.total_seconds() // 60)})
            closed += 1
    return closed


def borrower_opt_out(*, borrower: Borrower, address: str, actor: User | None, source: str = "web") -> Borrower:
    """An address asked to stop (STOP / 退订 / unsubscribe): nothing more is sent to it, at once."""
    address = address.strip()
    if not address:
        raise ValidationError({"address": _("Give the number or email address that opted out.")})
    normal = address.lower() if "@" in address else phone_e164(address, jurisdiction=borrower.jurisdiction)
    with transaction.atomic():
        borrower = Borrower.objects.select_for_update().get(pk=borrower.pk)
        if normal in borrower.opted_out:
            return borrower
        borrower.opted_out = [*borrower.opted_out, normal]
        borrower.save(update_fields=["opted_out", "updated_at"])
        from .selectors import mask_email, mask_phone

        audit_log(action="cases.borrower.opted_out", actor=actor, lender_id=borrower.lender_id, subject=borrower,
                  borrower_id=borrower.pk,
                  data={"address": mask_email(normal) if "@" in normal else mask_phone(normal), "source": source})
        return borrower


def contact_times_set(*, borrower: Borrower, windows: list[dict], actor: User | None) -> bool:
    """The times that suit the borrower (``Borrower.contact_windows``; [] = no preference), told to an agent
    or set on the borrower's page, on every lender's record of the same person: the gate then allows outreach
    only inside them as well (``compliance.rules.borrower_rules``). Audited on each account when it changes;
    without an actor, as the borrower's own act. Returns whether anything changed."""
    from .gate import contact_windows_facts

    contact_windows_facts(windows)  # refuses a malformed window before anything is written
    records = (Borrower.objects.filter(person_key=borrower.person_key) if borrower.person_key
               else Borrower.objects.filter(pk=borrower.pk))
    changed = False
    with transaction.atomic():
        for row in records.select_for_update().order_by("pk"):
            if (row.contact_windows or []) == windows:
                continue
            before, row.contact_windows = row.contact_windows, windows
            row.save(update_fields=["contact_windows", "updated_at"])
            changed = True
            for account_id in row.accounts.values_list("pk", flat=True):
                audit_log(action="cases.borrower.contact_times_changed", actor=actor,
                          actor_label="" if actor is not None else "borrower", lender_id=row.lender_id,
                          subject=row, account_id=account_id, borrower_id=row.pk,
                          data={"before": before, "after": windows})
    return changed


# ---------------------------------------------------------------------------------------------
# Ageing

BUCKETS = ((0, "M0"), (30, "M1"), (60, "M2"), (90, "M3"), (120, "M4"), (150, "M5"), (180, "M6"))


def bucket_for(days_past_due: int) -> str:
    """M0 = not yet overdue, M1 = 1-30 days, ..., M7+ = over 180 days."""
    if days_past_due <= 0:
        return "M0"
    for upper, label in BUCKETS[1:]:
        if days_past_due <= upper:
            return label
    return "M7+"


def days_past_due_on(*, due_date: date, today: date) -> int:
    return max(0, (today - due_date).days)


def account_age(*, account_id: int, today: date | None = None) -> OverdueAccount:
    """Recompute days past due and bucket of one account (the bulk version lives with the daily job)."""
    today = today or timezone.localdate()
    with transaction.atomic():
        account = OverdueAccount.objects.select_for_update().get(pk=account_id)
        dpd = days_past_due_on(due_date=account.due_date, today=today)
        bucket = bucket_for(dpd)
        if (dpd, bucket) != (account.days_past_due, account.bucket):
            before = account.bucket
            account.days_past_due, account.bucket = dpd, bucket
            account.save(update_fields=["days_past_due", "bucket", "updated_at"])
            if before != bucket:
                audit_log(
                    action="cases.account.aged", lender_id=account.lender_id, subject=account,
                    account_id=account.pk, borrower_id=account.borrower_id,
                    data={"days_past_due": dpd, "bucket_from": before, "bucket_to": bucket},
                )
        return account


# ---------------------------------------------------------------------------------------------
# Assignment, status, promises, payments, notes, callbacks


def account_status_change(*, actor: User, account: OverdueAccount, status: str, reason: str = "") -> OverdueAccount:
    if status not in OverdueAccount.Status.values:
        raise ValidationError({"status": _("Unknown status %(status)r.") % {"status": status}})
    with transaction.atomic():
        account = OverdueAccount.objects.select_for_update().get(pk=account.pk)
        before = account.status
        account.status = status
        account.save(update_fields=["status", "updated_at"])
        # Flags that legally stop outreach live on the borrower, where the check reads them.
        flag = {"dispute": "dispute", "ceased": "cease"}.get(status)
        if flag:
            Borrower.objects.filter(pk=account.borrower_id).update(**{flag: True})
        audit_log(
            action="cases.account.status_changed", actor=actor, lender_id=account.lender_id, subject=account,
            account_id=account.pk, borrower_id=account.borrower_id,
            data={"from": before, "to": status, "reason": reason[:500]},
        )
        return account


def promise_create(*, actor: User, account: OverdueAccount, amount: Decimal, due_date: date) -> PromiseToPay:
    if amount <= 0:
        raise ValidationError({"amount": _("The promised amount must be positive.")})
    if amount > account.balance:
        raise ValidationError({"amount": _("The promised amount exceeds the outstanding balance.")})
    if due_date < timezone.localdate():
        raise ValidationError({"due_date": _("The promised date cannot be in the past.")})
    with transaction.atomic():
        promise = PromiseToPay(account=account, amount=amount, currency=account.currency, due_date=due_date, created_by=actor)
        promise.full_clean()
        promise.save()
        OverdueAccount.objects.filter(pk=account.pk, status__in=["new", "assigned", "in_contact"]).update(
            status=OverdueAccount.Status.PROMISE
        )
        audit_log(
            action="cases.promise.created", actor=actor, lender_id=account.lender_id, subject=promise,
            account_id=account.pk, borrower_id=account.borrower_id,
            data={"amount": amount, "currency": account.currency, "due_date": due_date},
        )
        account_score_refresh_enqueue(account.pk)
        return promise


def payment_record(
    *, actor: User | None, account: OverdueAccount, amount: Decimal, paid_at: datetime, method: str = "", reference: str = ""
) -> Payment:
    if amount <= 0:
        raise ValidationError({"amount": _("The payment amount must be positive.")})
    with transaction.atomic():
        account = OverdueAccount.objects.select_for_update().get(pk=account.pk)
        balance_before = account.balance  # finance splits the payment over the balance parts (below)
        payment = Payment(
            account=account, amount=amount, currency=account.currency, paid_at=paid_at, method=method,
            reference=reference, recorded_by=actor,
        )
        payment.full_clean()
        payment.save()
        account.balance = max(Decimal("0"), account.balance - amount)
        account.last_payment_date = timezone.localdate(paid_at)
        if account.balance == 0:
            account.status = OverdueAccount.Status.PAID
        account.save(update_fields=["balance", "last_payment_date", "status", "updated_at"])
        # Open promises are kept once the money they promised has arrived (the oldest is credited).
        promise = account.promises.select_for_update().filter(status=PromiseToPay.Status.OPEN).order_by("due_date", "pk").first()
        if promise is not None:
            promise.paid_amount += amount
            if promise.paid_amount >= promise.amount:
                promise.status = PromiseToPay.Status.KEPT
            promise.save(update_fields=["paid_amount", "status"])
        # The whole payment also counts toward the plan, not just what the promise left over: a
        # promise and a plan are commitments about the same money (an agent typically takes a
        # promise for the next instalment), so splitting it would break a plan being honoured.
        plan_applied = _plan_payment_apply(actor=actor, account=account, amount=amount)
        # Balance parts, and what this payment did to the promise and plan (so a reversal can undo it);
        # before audit_log, to keep the lock order account -> children -> audit chain (cases/ageing.py).
        finance_services.payment_allocate(payment=payment, account=account, balance_before=balance_before,
                                          promise=promise, plan_applied=plan_applied)
        audit_log(
            action="cases.payment.recorded", actor=actor, lender_id=account.lender_id, subject=payment,
            account_id=account.pk, borrower_id=account.borrower_id,
            data={"amount": amount, "currency": account.currency, "paid_at": paid_at, "balance_after": account.balance,
                  **({"promise_id": promise.pk, "promise_status": promise.status} if promise is not None else {}),
                  **({"plan": plan_applied} if plan_applied is not None else {})},
        )
        account_score_refresh_enqueue(account.pk)
        return payment


def _plan_payment_apply(*, actor: User | None, account: OverdueAccount, amount: Decimal) -> dict | None:
    """Pay the active plan's open instalments oldest first; complete the plan once all are paid.

    Runs inside ``payment_record``'s transaction with the account locked. Returns what was applied
    (for the payment's audit event), or None when the account has no active plan with open instalments.
    Instalments are locked before the plan, in the order the daily ageing job locks them.
    """
    instalments = list(
        Instalment.objects.select_for_update(of=("self",))
        .filter(plan__account_id=account.pk, plan__status=RepaymentPlan.Status.ACTIVE, status=Instalment.Status.DUE)
        .order_by("due_date", "seq")
    )
    if not instalments:
        return None
    # repayment_plan_create keeps at most one plan active; should legacy data hold more, pay the newest.
    plan_id = max(i.plan_id for i in instalments)
    remaining, applied = amount, []
    for instalment in (i for i in instalments if i.plan_id == plan_id):
        if remaining <= 0:
            break
        part = min(remaining, instalment.amount - instalment.paid_amount)
        instalment.paid_amount += part
        remaining -= part
        if instalment.paid_amount >= instalment.amount:
            instalment.status = Instalment.Status.PAID
        instalment.save(update_fields=["paid_amount", "status"])
        applied.append({"instalment_id": instalment.pk, "seq": instalment.seq, "applied": part,
                        "paid_amount": instalment.paid_amount, "status": instalment.status})
    open_left = Instalment.objects.filter(
        plan_id=plan_id, status__in=[Instalment.Status.DUE, Instalment.Status.MISSED]
    ).exists()
    completed = not open_left and bool(
        RepaymentPlan.objects.filter(pk=plan_id, status=RepaymentPlan.Status.ACTIVE).update(
            status=RepaymentPlan.Status.COMPLETED
        )
    )
    if completed:
        plan = RepaymentPlan.objects.get(pk=plan_id)
        audit_log(
            action="cases.repayment_plan.completed", actor=actor, lender_id=account.lender_id, subject=plan,
            account_id=account.pk, borrower_id=account.borrower_id, data={"total_amount": plan.total_amount},
        )
    return {"plan_id": plan_id, "instalments": applied, "unapplied": remaining, "completed": completed}


def note_add(*, actor: User, account: OverdueAccount, body: str) -> Note:
    body = body.strip()
    if not body:
        raise ValidationError({"body": _("A note cannot be empty.")})
    with transaction.atomic():
        note = Note.objects.create(account=account, author=actor, body=body)
        audit_log(
            action="cases.note.added", actor=actor, lender_id=account.lender_id, subject=note,
            account_id=account.pk, borrower_id=account.borrower_id, data={"body": body[:2000]},
        )
        return note


def callback_schedule(*, actor: User, account: OverdueAccount, due_at: datetime, channel: str = "call", note: str = "") -> Callback:
    """Refused when the callback itself would not be a lawful outreach at that time.

    A refusal is audited (``compliance.callback.blocked``) and committed before ContactRefused is raised.
    """
    from .gate import contact_check

    if channel not in ContactAttempt.Channel.values:
        raise ValidationError({"channel": _("Unknown channel %(channel)r.") % {"channel": channel}})
    if timezone.is_naive(due_at):
        raise ValidationError({"due_at": _("Time must include a time zone offset.")})
    if due_at <= clock.now():
        raise ValidationError({"due_at": _("A callback must be scheduled in the future.")})
    decision = contact_check(account=account, channel=channel, at=due_at)
    with transaction.atomic():
        if not decision.allowed:
            audit_log(
                action="compliance.callback.blocked", actor=actor, lender_id=account.lender_id, subject=account,
                account_id=account.pk, borrower_id=account.borrower_id,
                policy_code=decision.policy_code, policy_version=decision.policy_version,
                data={"due_at": due_at, "channel": channel, **decision_as_dict(decision)},
            )
        else:
            callback = Callback.objects.create(account=account, agent=actor, due_at=due_at, channel=channel, note=note[:500])
            audit_log(
                action="cases.callback.scheduled", actor=actor, lender_id=account.lender_id, subject=callback,
                account_id=account.pk, borrower_id=account.borrower_id, data={"due_at": due_at, "channel": channel},
            )
    if not decision.allowed:
        raise ContactRefused(decision)
    return callback


# ---------------------------------------------------------------------------------------------
# Agent workspace: repayment plans, soft locks, bulk assignment, PII reveal

LOCK_TTL = timedelta(minutes=15)


def _plan_instalments_validate(*, account: OverdueAccount, total_amount: Decimal,
                               instalments: list[tuple[date, Decimal]]) -> None:
    errors: dict[str, str] = {}
    if total_amount <= 0:
        errors["total_amount"] = _("The agreed amount must be positive.")
    elif total_amount > account.balance:
        errors["total_amount"] = _("The agreed amount exceeds the outstanding balance.")
    if not instalments:
        errors["instalments"] = _("A plan needs at least one instalment.")
    else:
        dates = [d for d, _a in instalments]
        if any(a <= 0 for _d, a in instalments):
            errors["instalments"] = _("Every instalment amount must be positive.")
        elif dates != sorted(dates) or len(set(dates)) != len(dates):
            errors["instalments"] = _("Instalment dates must be distinct and in order.")
        elif dates[0] < timezone.localdate():
            errors["instalments"] = _("The first instalment cannot be in the past.")
        elif sum((a for _d, a in instalments), Decimal("0")) != total_amount:
            errors["instalments"] = _("The instalments add up to %(sum)s, not the agreed %(total)s.") % {
                "sum": sum((a for _d, a in instalments), Decimal("0")), "total": total_amount}
    if errors:
        raise ValidationError(errors)


def _plans_replace(*, account: OverdueAccount, status: str) -> list[int]:
    """Cancel the account's plans in ``status`` (a newer plan replaces them); their ids."""
    ids = list(account.plans.filter(status=status).order_by("pk").values_list("pk", flat=True))
    RepaymentPlan.objects.filter(pk__in=ids).update(status=RepaymentPlan.Status.CANCELLED)
    return ids


def _account_on_plan(account: OverdueAccount) -> None:
    if account.status in ("new", "assigned", "in_contact", "promise"):
        account.status = OverdueAccount.Status.PLAN
        account.save(update_fields=["status", "updated_at"])


def repayment_plan_create(
    *, actor: User, account: OverdueAccount, total_amount: Decimal, instalments: list[tuple[date, Decimal]],
    settlement: Settlement | None = None,
) -> RepaymentPlan:
    """A negotiated schedule: instalment amounts must add up to exactly the agreed total.

    A plan for the whole balance is active at once and replaces the account's active plan. A plan for less than the
    balance is a settlement (issue 13; ``finance.services.settlement_for_plan``): within the lender's terms (the
    floor for the account's bucket, the maximum instalments) it is active at once as well, with its settlement
    approved, and paid in full the account is settled and the rest written off; outside them the plan is *pending*
    (status ``pending``) in the supervisors' settlement queue, and the active plan stays in force until a supervisor
    approves it (``repayment_plan_activate``) or declines it (``repayment_plan_decline``). The newest plan supersedes
    one still waiting for approval. Every caller (workspace, borrower proposals, settlement offers) comes here.

    ``settlement``: an approved settlement offer this plan pays (``finance.services._settlement_activate``); its
    terms were checked when it was offered.
    """
    _plan_instalments_validate(account=account, total_amount=total_amount, instalments=instalments)
    with transaction.atomic():
        account = OverdueAccount.objects.select_for_update().get(pk=account.pk)
        if not account.is_open:
            raise ValidationError(_("This account is closed; no plan can be made."))
        if total_amount > account.balance:  # paid down since the caller read it
            raise ValidationError({"total_amount": _("The agreed amount exceeds the outstanding balance.")})
        check = None
        if settlement is None and total_amount < account.balance:
            check = finance_services.settlement_check(account=account, amount=total_amount,
                                                      instalments=len(instalments))
        pending = check is not None and check.needs_approval
        plan = RepaymentPlan(account=account, total_amount=total_amount, currency=account.currency, created_by=actor,
                             status=RepaymentPlan.Status.PENDING if pending else RepaymentPlan.Status.ACTIVE)
        plan.full_clean()
        # The newest plan supersedes one still waiting for approval; an active plan replaces the active one
        # (renegotiation) and the settlement it paid. All visible in the audit log.
        superseded = _plans_replace(account=account, status=RepaymentPlan.Status.PENDING)
        replaced = [] if pending else _plans_replace(account=account, status=RepaymentPlan.Status.ACTIVE)
        plan.save()
        withdrawn = finance_services.settlements_withdraw(
            actor=actor, account=account, plan_id=plan.pk, keep_id=settlement.pk if settlement else None,
            statuses=["pending"] if pending else ["pending", "approved"])
        Instalment.objects.bulk_create(
            [Instalment(plan=plan, seq=i, due_date=d, amount=a) for i, (d, a) in enumerate(instalments, start=1)]
        )
        if not pending:
            _account_on_plan(account)
        audit_log(
            action="cases.repayment_plan.created", actor=actor, lender_id=account.lender_id, subject=plan,
            account_id=account.pk, borrower_id=account.borrower_id,
            data={"total_amount": total_amount, "currency": account.currency, "status": plan.status,
                  "replaced_plans": replaced, "superseded_plans": superseded, "withdrawn_settlements": withdrawn,
                  "balance": account.balance, "settlement_offer": settlement.pk if settlement else None,
                  "instalments": [{"due_date": d, "amount": a} for d, a in instalments]},
        )
        if check is not None:
            finance_services.settlement_for_plan(actor=actor, account=account, plan=plan, check=check,
                                                 instalments=instalments)
        return plan


def _pending_plan_locked(*, plan: RepaymentPlan) -> tuple[OverdueAccount, RepaymentPlan]:
    account = OverdueAccount.objects.select_for_update().get(pk=plan.account_id)
    plan = RepaymentPlan.objects.select_for_update().get(pk=plan.pk)
    if plan.status != RepaymentPlan.Status.PENDING:
        raise ValidationError(_("This repayment plan is no longer waiting for approval."))
    return account, plan


def repayment_plan_activate(*, actor: User, plan: RepaymentPlan) -> RepaymentPlan:
    """A supervisor approved the settlement of a pending plan (inside ``finance.services.settlement_approve``): the
    plan becomes active and replaces the account's active plan (and the settlement that plan paid)."""
    with transaction.atomic():
        account, plan = _pending_plan_locked(plan=plan)
        if not account.is_open:
            raise ValidationError(_("This account is closed; no plan can be made."))
        if plan.total_amount > account.balance:
            raise ValidationError(_("The balance has fallen below this plan's total since it was made; "
                                    "decline it and make a new plan."))
        first = plan.instalments.order_by("seq").values_list("due_date", flat=True).first()
        if first is not None and first < timezone.localdate():
            raise ValidationError(_("This plan's first instalment date has passed; decline it and make a new plan."))
        replaced = _plans_replace(account=account, status=RepaymentPlan.Status.ACTIVE)
        withdrawn = finance_services.settlements_withdraw(actor=actor, account=account, plan_id=plan.pk,
                                                          statuses=["approved"])
        plan.status = RepaymentPlan.Status.ACTIVE
        plan.save(update_fields=["status"])
        _account_on_plan(account)
        audit_log(
            action="cases.repayment_plan.approved", actor=actor, lender_id=account.lender_id, subject=plan,
            account_id=account.pk, borrower_id=account.borrower_id,
            data={"total_amount": plan.total_amount, "currency": plan.currency, "replaced_plans": replaced,
                  "withdrawn_settlements": withdrawn},
        )
        return plan


def repayment_plan_decline(*, actor: User, plan: RepaymentPlan, note: str = "") -> RepaymentPlan:
    """A supervisor declined the settlement of a pending plan (inside ``finance.services.settlement_decline``): the
    plan is cancelled; the account's active plan, if any, stays in force."""
    with transaction.atomic():
        account, plan = _pending_plan_locked(plan=plan)
        plan.status = RepaymentPlan.Status.CANCELLED
        plan.save(update_fields=["status"])
        audit_log(
            action="cases.repayment_plan.declined", actor=actor, lender_id=account.lender_id, subject=plan,
            account_id=account.pk, borrower_id=account.borrower_id,
            data={"total_amount": plan.total_amount, "currency": plan.currency, "note": note[:500]},
        )
        return plan


def account_lock_acquire(*, actor: User, account: OverdueAccount, ttl: timedelta = LOCK_TTL) -> tuple[bool, OverdueAccount]:
    """Soft lock: one agent works an account at a time. Returns (acquired, fresh account).

    Re-acquiring one's own lock just extends it (not audited: it happens on every page view);
    taking a free or expired lock is audited.
    """
    now = timezone.now()
    with transaction.atomic():
        account = OverdueAccount.objects.select_for_update(of=("self",)).select_related("locked_by", "borrower", "lender").get(pk=account.pk)
        held_by_other = account.locked_by_id not in (None, actor.pk) and account.locked_until and account.locked_until > now
        if held_by_other:
            return False, account
        mine = account.locked_by_id == actor.pk and account.locked_until and account.locked_until > now
        account.locked_by, account.locked_until = actor, now + ttl
        account.save(update_fields=["locked_by", "locked_until"])
        if not mine:
            audit_log(
                action="cases.account.locked", actor=actor, lender_id=account.lender_id, subject=account,
                account_id=account.pk, borrower_id=account.borrower_id, data={"until": account.locked_until},
            )
        return True, account


def account_lock_release(*, actor: User, account: OverdueAccount) -> bool:
    """Release the caller's own lock (supervisors may release anyone's). Returns whether a lock was released."""
    with transaction.atomic():
        account = OverdueAccount.objects.select_for_update().get(pk=account.pk)
        if account.locked_by_id is None or (account.locked_by_id != actor.pk and not actor.is_supervisor):
            return False
        holder = account.locked_by_id
        account.locked_by, account.locked_until = None, None
        account.save(update_fields=["locked_by", "locked_until"])
        audit_log(
            action="cases.account.unlocked", actor=actor, lender_id=account.lender_id, subject=account,
            account_id=account.pk, borrower_id=account.borrower_id, data={"holder": holder},
        )
        return True


def account_assign_bulk(*, actor: User, account_ids: list[int], agent: User | None) -> int:
    """Assign (or unassign, agent=None) many accounts at once: all or nothing, one audit event per account."""
    if not actor.is_supervisor:
        raise ValidationError(_("Only supervisors can assign accounts."))
    if agent is not None and not agent.is_agent:
        raise ValidationError({"agent": _("Accounts can only be assigned to agents.")})
    if not account_ids:
        raise ValidationError(_("Select at least one account."))
    allowed_lenders = set(agent.lenders.values_list("pk", flat=True)) if agent is not None else set()
    with transaction.atomic():
        accounts = list(OverdueAccount.objects.select_for_update().filter(pk__in=set(account_ids)).order_by("pk"))
        closed = [a.external_ref for a in accounts if not a.is_open]
        if closed:
            raise ValidationError(_("These accounts are closed and cannot be assigned: %(refs)s") % {"refs": ", ".join(closed[:20])})
        if allowed_lenders:
            foreign = [a.external_ref for a in accounts if a.lender_id not in allowed_lenders]
            if foreign:
                raise ValidationError(
                    _("%(agent)s may not work these lenders' accounts: %(refs)s") % {"agent": agent.get_username(), "refs": ", ".join(foreign[:20])}
                )
        for account in accounts:
            before = account.assigned_agent_id
            if before == (agent.pk if agent else None):
                continue
            account.assigned_agent = agent
            if agent is not None and account.status == OverdueAccount.Status.NEW:
                account.status = OverdueAccount.Status.ASSIGNED
            # A reassigned account is no longer being worked by its previous holder.
            account.locked_by, account.locked_until = None, None
            account.save(update_fields=["assigned_agent", "status", "locked_by", "locked_until", "updated_at"])
            audit_log(
                action="cases.account.assigned", actor=actor, lender_id=account.lender_id, subject=account,
                account_id=account.pk, borrower_id=account.borrower_id,
                data={"from_agent": before, "to_agent": agent.pk if agent else None, "bulk": True},
            )
        return len(accounts)


def borrower_pii_reveal(*, actor: User, account: OverdueAccount, fields: list[str]) -> None:
    """Unmasked PII was shown to ``actor``: who saw what, when (values themselves are not logged)."""
    with transaction.atomic():
        audit_log(
            action="cases.pii.viewed", actor=actor, lender_id=account.lender_id, subject=account.borrower,
            account_id=account.pk, borrower_id=account.borrower_id, data={"fields": fields},
        )
