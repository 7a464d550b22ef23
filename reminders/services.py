"""Writes for reminders: scheduling (bulk, idempotent), the sweep, sending through the compliance gate.

State machine of a Reminder::

    scheduled/deferred --(gate refuses, time only)--> deferred (next_attempt_at = next lawful time)
    scheduled/deferred --(gate refuses, hold/consent/closed)--> cancelled (audited)
    scheduled/deferred --(gate records the attempt; row claimed)--> sending --(sender ok)--> sent
    sending --(sender error)--> scheduled with backoff, or failed after REMINDER_MAX_ATTEMPTS
    sending, claim older than REMINDER_STALE_SENDING_SECONDS (worker died) --> recovered by the sweep

Why a retried or duplicated task never sends twice: see reminders/senders.py (claim under a row lock,
``send_started_at`` committed before the provider is called, provider message id = idempotency key,
lookup on recovery).
"""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from borrowers.messages import (
    TEMPLATE_KINDS,
    date_text,
    message_language,
    message_render,
    message_template_get,
    money_text,
    with_opt_out,
)
from cases.gate import borrower_facts
from cases.importers.selectors import money
from cases.models import Callback, ContactAttempt, Instalment, OverdueAccount, PromiseToPay, RepaymentPlan, User
from cases.selectors import account_list_for_user
from cases.services import ContactRefused, contact_attempt_record
from compliance import rules
from compliance.audit import audit_log, audit_log_many
from compliance.selectors import decision_as_dict
from servicing import clock

from .models import Notification, Reminder
from .senders import OutboundMessage, get_sender

log = logging.getLogger(__name__)

# Local wall-clock times of borrower reminders: the day before the due date, and the morning of it.
DAY_BEFORE_AT = time(10, 0)
DAY_OF_AT = time(9, 0)
CALLBACK_LEAD = timedelta(minutes=10)


def _audit(reminder: Reminder, action: str, *, actor=None, **data) -> None:
    audit_log(
        action=action, actor=actor, lender_id=reminder.lender_id, subject=reminder, account_id=reminder.account_id,
        data={"key": reminder.idempotency_key, "kind": reminder.kind, "channel": reminder.channel, **data},
    )


# ---------------------------------------------------------------------------------------------
# Scheduling


@dataclass(frozen=True)
class _Candidate:
    key: str
    kind: str
    channel: str
    lender_id: int
    account_id: int
    borrower_id: int | None
    due_at: datetime
    promise_id: int | None = None
    instalment_id: int | None = None
    callback_id: int | None = None
    recipient_id: int | None = None


def _local(day: date, at: time, zone: str) -> datetime:
    return datetime.combine(day, at, tzinfo=ZoneInfo(zone))


def _borrower_channel(*, phones, emails, sms_consent: bool, email_consent: bool) -> str | None:
    if phones and sms_consent:
        return Reminder.Channel.SMS
    if emails and email_consent:
        return Reminder.Channel.EMAIL
    return None


def _insert(candidates: list[_Candidate]) -> int:
    """Insert the candidates not yet scheduled and audit them in bulk. Caller holds the scheduling lock."""
    keys = [c.key for c in candidates]
    existing: set[str] = set()
    for i in range(0, len(keys), 5000):
        existing.update(Reminder.objects.filter(idempotency_key__in=keys[i:i + 5000]).values_list("idempotency_key", flat=True))
    new = [
        Reminder(
            idempotency_key=c.key, kind=c.kind, channel=c.channel, lender_id=c.lender_id, account_id=c.account_id,
            promise_id=c.promise_id, instalment_id=c.instalment_id, callback_id=c.callback_id,
            recipient_id=c.recipient_id, due_at=c.due_at, next_attempt_at=c.due_at,
        )
        for c in {c.key: c for c in candidates if c.key not in existing}.values()
    ]
    Reminder.objects.bulk_create(new, batch_size=5000)
    audit_log_many(events=[
        {"action": "reminders.reminder.scheduled", "lender_id": r.lender_id, "subject_type": "reminders.reminder",
         "subject_id": r.pk, "account_id": r.account_id,
         "data": {"key": r.idempotency_key, "kind": r.kind, "channel": r.channel, "due_at": r.due_at}}
        for r in new
    ])
    return len(new)


def _lock_scheduling() -> None:
    # One scheduler at a time (beat may overlap a manual run); SQLite serialises writers anyway.
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(74201305)")


def reminders_schedule(*, now: datetime | None = None, callbacks_only: bool = False) -> dict:
    """Create the reminders for promises and instalments due today or tomorrow (borrower and agent)
    and for agents' callbacks due within a day (``callbacks_only``: just those, for the frequent run).

    Idempotent: a reminder's key names its subject and day, so running this every hour adds only
    what is new (a promise made this morning for tomorrow). Set-based: a few queries whatever the size.
    """
    now = now or clock.now()
    today = timezone.localdate(now)
    # Borrowers may be a day ahead of or behind the server; the due_at filter below sorts it out.
    window = (today - timedelta(days=1), today + timedelta(days=2))
    stale = now - timedelta(hours=12)
    open_statuses = OverdueAccount.OPEN_STATUSES
    candidates: list[_Candidate] = []

    def add_borrower_reminders(*, kind, prefix, subject_id, due_date, lender_id, account_id, borrower_id, zones,
                               phones, emails, sms_consent, email_consent, agent_id, extra):
        zone = (zones or [settings.TIME_ZONE])[0]
        channel = _borrower_channel(phones=phones, emails=emails, sms_consent=sms_consent, email_consent=email_consent)
        for label, day, at in (("d-1", due_date - timedelta(days=1), DAY_BEFORE_AT), ("d0", due_date, DAY_OF_AT)):
            due_at = _local(day, at, zone)
            if due_at < stale:
                continue
            if channel:
                candidates.append(_Candidate(
                    key=f"{prefix}:{subject_id}:{due_date.isoformat()}:{label}:{channel}", kind=kind, channel=channel,
                    lender_id=lender_id, account_id=account_id, borrower_id=borrower_id, due_at=due_at, **extra,
                ))
            if label == "d0" and agent_id:
                candidates.append(_Candidate(
                    key=f"{prefix}:{subject_id}:{due_date.isoformat()}:agent:{agent_id}", kind=kind,
                    channel=Reminder.Channel.IN_APP, lender_id=lender_id, account_id=account_id, borrower_id=None,
                    due_at=_local(due_date, DAY_OF_AT, settings.TIME_ZONE), recipient_id=agent_id, **extra,
                ))

    borrower_cols = ("account__borrower__time_zones", "account__borrower__phones", "account__borrower__emails",
                     "account__borrower__sms_consent", "account__borrower__email_consent")
    promises = (PromiseToPay.objects.none() if callbacks_only else PromiseToPay.objects).filter(
        status=PromiseToPay.Status.OPEN, due_date__range=window, account__status__in=open_statuses,
    ).values_list("id", "due_date", "account__lender_id", "account_id", "account__borrower_id",
                  "account__assigned_agent_id", *borrower_cols)
    for pid, due, lender_id, acc_id, bor_id, agent_id, zones, phones, emails, sms_ok, email_ok in promises:
        add_borrower_reminders(
            kind=Reminder.Kind.PROMISE_DUE, prefix="promise", subject_id=pid, due_date=due, lender_id=lender_id,
            account_id=acc_id, borrower_id=bor_id, zones=zones, phones=phones, emails=emails, sms_consent=sms_ok,
            email_consent=email_ok, agent_id=agent_id, extra={"promise_id": pid},
        )
    instalments = (Instalment.objects.none() if callbacks_only else Instalment.objects).filter(
        status=Instalment.Status.DUE, due_date__range=window, plan__status=RepaymentPlan.Status.ACTIVE,
        plan__account__status__in=open_statuses,
    ).values_list("id", "due_date", "plan__account__lender_id", "plan__account_id", "plan__account__borrower_id",
                  "plan__account__assigned_agent_id", *(c.replace("account__", "plan__account__", 1) for c in borrower_cols))
    for iid, due, lender_id, acc_id, bor_id, agent_id, zones, phones, emails, sms_ok, email_ok in instalments:
        add_borrower_reminders(
            kind=Reminder.Kind.INSTALMENT_DUE, prefix="instalment", subject_id=iid, due_date=due, lender_id=lender_id,
            account_id=acc_id, borrower_id=bor_id, zones=zones, phones=phones, emails=emails, sms_consent=sms_ok,
            email_consent=email_ok, agent_id=agent_id, extra={"instalment_id": iid},
        )
    callbacks = Callback.objects.filter(
        status=Callback.Status.SCHEDULED, due_at__gte=stale, due_at__lt=now + timedelta(days=1),
    ).values_list("id", "due_at", "account__lender_id", "account_id", "agent_id")
    for cid, due_at, lender_id, acc_id, agent_id in callbacks:
        candidates.append(_Candidate(
            key=f"callback:{cid}:{due_at.astimezone(ZoneInfo('UTC')).strftime('%Y%m%dT%H%M%S')}",
            kind=Reminder.Kind.CALLBACK_DUE, channel=Reminder.Channel.IN_APP, lender_id=lender_id,
            account_id=acc_id, borrower_id=None, due_at=due_at - CALLBACK_LEAD, callback_id=cid, recipient_id=agent_id,
        ))
    with transaction.atomic():
        _lock_scheduling()
        created = _insert(candidates)
    return {"candidates": len(candidates), "created": created}


def reminder_create(
    *, account: OverdueAccount, kind: str, channel: str, due_at: datetime, key: str | None = None,
    promise: PromiseToPay | None = None, instalment: Instalment | None = None, recipient: User | None = None,
    actor: User | None = None,
) -> Reminder:
    """Schedule one reminder by hand (or from a test); scheduling in bulk uses ``reminders_schedule``."""
    if kind not in Reminder.Kind.values:
        raise ValidationError({"kind": _("Unknown kind %(kind)r.") % {"kind": kind}})
    if channel not in Reminder.Channel.values:
        raise ValidationError({"channel": _("Unknown channel %(channel)r.") % {"channel": channel}})
    if timezone.is_naive(due_at):
        raise ValidationError({"due_at": _("Time must include a time zone offset.")})
    if channel == Reminder.Channel.IN_APP and recipient is None:
        raise ValidationError({"recipient": _("An agent notification needs a recipient.")})
    with transaction.atomic():
        reminder = Reminder(
            idempotency_key=key or f"manual:{uuid.uuid4().hex}", kind=kind, channel=channel,
            lender_id=account.lender_id, account=account, promise=promise, instalment=instalment,
            recipient=recipient, due_at=due_at, next_attempt_at=due_at,
        )
        reminder.full_clean()
        reminder.save()
        _audit(reminder, "reminders.reminder.scheduled", actor=actor, due_at=due_at)
        return reminder


# ---------------------------------------------------------------------------------------------
# The sweep


def reminders_due(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Ids to process now: pending reminders that are due, and "sending" ones whose worker died."""
    now = now or clock.now()
    stale = timezone.now() - timedelta(seconds=settings.REMINDER_STALE_SENDING_SECONDS)
    due = list(
        Reminder.objects.filter(state__in=Reminder.PENDING_STATES, next_attempt_at__lte=now)
        .order_by("next_attempt_at").values_list("id", flat=True)[:limit]
    )
    stuck = list(
        Reminder.objects.filter(state=Reminder.State.SENDING, claimed_at__lt=stale)
        .order_by("claimed_at").values_list("id", flat=True)[:limit]
    )
    return stuck + due


# ---------------------------------------------------------------------------------------------
# Sending


def _message_values(reminder: Reminder) -> dict:
    """What a borrower reminder says, in the active language: the amount with separators and currency,
    the date localised. The lender's template and the built-in text use the same values."""
    account = reminder.account
    values = {"balance": money(account.balance)}
    if reminder.kind == Reminder.Kind.INSTALMENT_DUE and reminder.instalment_id:
        inst = reminder.instalment
        values.update(seq=inst.seq, amount=money_text(amount=inst.amount, currency=account.currency),
                      due_date=date_text(value=inst.due_date))
    elif reminder.promise_id:
        promise = reminder.promise
        values.update(amount=money_text(amount=promise.amount - promise.paid_amount, currency=promise.currency),
                      currency=promise.currency, due_date=date_text(value=promise.due_date))
    return values


def _lender_text(reminder: Reminder, *, language: str, values: dict) -> tuple[str, str] | None:
    """(body, subject) from the lender's template for this reminder in the borrower's language, or None
    (no template, or the message would not go to the borrower). Only borrower messages use a template;
    rendering checks the variables again, and a template that fails leaves the built-in text."""
    spec = TEMPLATE_KINDS.get(reminder.kind)
    attempt = reminder.contact_attempt
    if (spec is None or spec.party != ContactAttempt.Party.BORROWER or "amount" not in values
            or (attempt is not None and attempt.party != ContactAttempt.Party.BORROWER)):
        return None
    row = message_template_get(lender_id=reminder.lender_id, kind=reminder.kind, language=language)
    if row is None:
        return None
    try:
        body = message_render(template=row.body, party=spec.party, account=reminder.account, values=values,
                              extra=spec.extra)
        subject = message_render(template=row.subject, party=spec.party, account=reminder.account, values=values,
                                 extra=spec.extra) if row.subject else str(_("Payment reminder"))
    except (ValidationError, AttributeError, IndexError, KeyError, ValueError) as exc:
        log.warning("reminder %s: template %s not usable, built-in text sent: %s", reminder.idempotency_key,
                    row.pk, exc)
        return None
    return with_opt_out(body), subject


def _message(reminder: Reminder) -> OutboundMessage:
    account = reminder.account
    borrower = account.borrower
    lang = message_language(borrower=borrower)
    with translation.override(lang):
        values = _message_values(reminder)
        custom = _lender_text(reminder, language=lang, values=values)
        if custom is not None:
            body, subject = custom
        else:
            if "seq" in values:
                body = _("%(lender)s: instalment %(seq)s of %(amount)s %(currency)s on account %(ref)s is due on "
                         "%(date)s.") % {"lender": account.lender.name, "seq": values["seq"],
                                         "amount": money(reminder.instalment.amount), "currency": account.currency,
                                         "ref": account.external_ref, "date": values["due_date"]}
            elif "amount" in values:
                promise = reminder.promise
                body = _("%(lender)s: your promised payment of %(amount)s %(currency)s on account %(ref)s is due "
                         "on %(date)s.") % {"lender": account.lender.name,
                                            "amount": money(promise.amount - promise.paid_amount),
                                            "currency": promise.currency, "ref": account.external_ref,
                                            "date": values["due_date"]}
            else:
                body = _("%(lender)s: a payment on account %(ref)s is due.") % {
                    "lender": account.lender.name, "ref": account.external_ref}
            body = with_opt_out(body)  # electronic messages must offer an opt-out
            subject = str(_("Payment reminder"))
    to = str((borrower.phones if reminder.channel == Reminder.Channel.SMS else borrower.emails or [""])[0])
    return OutboundMessage(key=reminder.idempotency_key, channel=reminder.channel, to=to, body=body, subject=subject)


def _why_not_sendable(reminder: Reminder) -> str | None:
    """Reasons outside the compliance engine to drop a borrower reminder (checked at send time)."""
    account, borrower = reminder.account, reminder.account.borrower
    if not account.is_open:
        return f"account is {account.status}"
    if reminder.promise_id and reminder.promise.status != PromiseToPay.Status.OPEN:
        return f"promise is {reminder.promise.status}"
    if reminder.instalment_id and reminder.instalment.status != Instalment.Status.DUE:
        return f"instalment is {reminder.instalment.status}"
    if reminder.channel == Reminder.Channel.SMS and not (borrower.sms_consent and borrower.phones):
        return "no SMS consent or number"
    if reminder.channel == Reminder.Channel.EMAIL and not (borrower.email_consent and borrower.emails):
        return "no email consent or address"
    return None


def _send_window_policy() -> rules.Policy | None:
    return _window_policy(settings.REMINDER_SEND_WINDOW.strip())


@functools.lru_cache(maxsize=8)
def _window_policy(window: str) -> rules.Policy | None:
    if not window:
        return None
    start, end = (part.strip() for part in window.split("-"))
    return rules.Policy.from_dict({
        "code": "REMINDER", "version": 1, "name": "Automated reminder hours",
        "rules": [{
            "type": "time_window", "code": "REMINDER.SEND_WINDOW",
            "citation": f"Internal policy: automated reminders {start}–{end} borrower local time",
            "windows": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": start, "end": end}],
        }],
    })


def _send_window_decision(reminder: Reminder, at: datetime) -> rules.Decision | None:
    """Our own reminder hours, evaluated by the same pure engine (zones, DST). None when inside them."""
    policy = _send_window_policy()
    borrower = reminder.account.borrower
    if policy is None or borrower.holds:  # under a hold the gate cancels now rather than later
        return None
    decision = rules.evaluate(
        policy=policy, facts=borrower_facts(borrower=borrower), history=[],
        proposal=rules.Proposal(at=at, channel=reminder.channel, account_id=reminder.account_id),
    )
    return None if decision.allowed else decision


def _defer(reminder: Reminder, decision: rules.Decision, reason: str) -> str:
    reminder.state = Reminder.State.DEFERRED
    reminder.next_attempt_at = decision.next_allowed_at
    reminder.last_error = reason[:1000]
    reminder.save(update_fields=["state", "next_attempt_at", "last_error", "updated_at"])
    _audit(reminder, "reminders.reminder.deferred", until=decision.next_allowed_at, decision=decision_as_dict(decision))
    return reminder.state


def _cancel(reminder: Reminder, reason: str, *, actor=None, **data) -> str:
    reminder.state = Reminder.State.CANCELLED
    reminder.last_error = reason[:1000]
    reminder.claim_token = None
    reminder.save(update_fields=["state", "last_error", "claim_token", "updated_at"])
    _audit(reminder, "reminders.reminder.cancelled", actor=actor, reason=reason, **data)
    return reminder.state


def _mark_sent(reminder: Reminder, provider_id: str, **data) -> str:
    reminder.state = Reminder.State.SENT
    reminder.sent_at = clock.now()
    reminder.provider_message_id = provider_id[:200]
    reminder.claim_token = None
    # "attempts" too: in-app delivery counts its attempt here (the borrower path saved it at the claim).
    reminder.save(update_fields=["state", "sent_at", "provider_message_id", "claim_token", "attempts", "updated_at"])
    _audit(reminder, "reminders.reminder.sent", provider_message_id=provider_id, attempts=reminder.attempts,
           contact_attempt_id=reminder.contact_attempt_id, **data)
    return reminder.state


def _attempt_failed(reminder: Reminder) -> None:
    """The recorded outreach did not reach the borrower: say so (not counted as delivered), audited.

    Runs inside the caller's transaction, so the outcome change and its audit event commit together.
    """
    if not reminder.contact_attempt_id:
        return
    attempt = (
        ContactAttempt.objects.select_for_update().only("id", "outcome", "account_id", "borrower_id", "lender_id")
        .filter(pk=reminder.contact_attempt_id).first()
    )
    if attempt is None or attempt.outcome == ContactAttempt.Outcome.FAILED:
        return
    before = attempt.outcome
    attempt.outcome = ContactAttempt.Outcome.FAILED
    attempt.save(update_fields=["outcome"])
    audit_log(
        action="cases.contact_attempt.outcome_changed", lender_id=attempt.lender_id, subject=attempt,
        account_id=attempt.account_id, borrower_id=attempt.borrower_id,
        data={"attempt_id": attempt.pk, "from": before, "to": attempt.outcome, "account_id": attempt.account_id,
              "borrower_id": attempt.borrower_id, "lender_id": attempt.lender_id,
              "reminder_key": reminder.idempotency_key},
    )


def _deliver_in_app(reminder: Reminder) -> str:
    if reminder.callback_id and reminder.callback.status != Callback.Status.SCHEDULED:
        return _cancel(reminder, f"callback is {reminder.callback.status}")
    if not reminder.account.is_open:
        return _cancel(reminder, f"account is {reminder.account.status}")
    # The recipient was fixed at scheduling time; after a reassignment (or deactivation) they must not
    # receive the account reference and note any more.
    recipient = reminder.recipient
    if recipient is None or not account_list_for_user(user=recipient).filter(pk=reminder.account_id).exists():
        return _cancel(reminder, "recipient can no longer see the account", recipient_id=reminder.recipient_id)
    kind = {Reminder.Kind.CALLBACK_DUE: Notification.Kind.CALLBACK_DUE,
            Reminder.Kind.INSTALMENT_DUE: Notification.Kind.INSTALMENT_DUE}.get(reminder.kind, Notification.Kind.PROMISE_DUE)
    due_at = reminder.callback.due_at if reminder.callback_id else reminder.due_at
    note = reminder.callback.note if reminder.callback_id else ""
    Notification.objects.get_or_create(
        key=reminder.idempotency_key,
        defaults={"user_id": reminder.recipient_id, "account_id": reminder.account_id, "kind": kind,
                  "message": note[:500], "due_at": due_at},
    )
    reminder.attempts += 1
    return _mark_sent(reminder, reminder.idempotency_key)


def _recover(reminder: Reminder) -> str | None:
    """A "sending" row whose worker died. Returns a final state, or None to send it again now."""
    sender = get_sender(reminder.channel)
    if reminder.send_started_at is not None:
        if sender.supports_lookup:
            provider_id = sender.lookup(reminder.idempotency_key)
            if provider_id:
                return _mark_sent(reminder, provider_id, recovered=True)
        else:
            reminder.state = Reminder.State.FAILED
            reminder.last_error = "worker stopped during the send; delivery unknown (backend cannot be queried)"
            reminder.claim_token = None
            reminder.save(update_fields=["state", "last_error", "claim_token", "updated_at"])
            _audit(reminder, "reminders.reminder.failed", reason=reminder.last_error)
            return reminder.state
    # Certainly not sent: the recorded attempt did not happen; go through the gate again.
    _attempt_failed(reminder)
    reminder.state = Reminder.State.SCHEDULED
    reminder.next_attempt_at = clock.now()
    reminder.claim_token = None
    reminder.save(update_fields=["state", "next_attempt_at", "claim_token", "updated_at"])
    _audit(reminder, "reminders.reminder.recovered", contact_attempt_id=reminder.contact_attempt_id)
    return None


def reminder_send(*, reminder_id: int) -> str:
    """Send one reminder if it is due, exactly once; safe to call any number of times, concurrently.

    Returns the reminder's state afterwards (or "missing").
    """
    now = clock.now()
    with transaction.atomic():
        reminder = (
            Reminder.objects.select_for_update(of=("self",))
            .select_related("account__borrower", "account__lender", "promise", "instalment", "callback", "recipient")
            .filter(pk=reminder_id).first()
        )
        if reminder is None:
            return "missing"
        if reminder.state in Reminder.FINAL_STATES:
            return reminder.state
        if reminder.state == Reminder.State.SENDING:
            stale = timezone.now() - timedelta(seconds=settings.REMINDER_STALE_SENDING_SECONDS)
            if reminder.claimed_at and reminder.claimed_at >= stale:
                return reminder.state  # another worker is sending it right now
            final = _recover(reminder)
            if final is not None:
                return final
        elif reminder.next_attempt_at > now:
            return reminder.state  # not due yet (e.g. deferred to the next lawful time)
        if reminder.channel == Reminder.Channel.IN_APP:
            return _deliver_in_app(reminder)
        reason = _why_not_sendable(reminder)
        if reason:
            return _cancel(reminder, reason)
        outside_hours = _send_window_decision(reminder, now)
        if outside_hours is not None and outside_hours.next_allowed_at is not None:
            return _defer(reminder, outside_hours, "; ".join(v.message for v in outside_hours.violations))
        try:
            attempt = contact_attempt_record(
                account=reminder.account, actor=None, channel=reminder.channel,
                outcome=ContactAttempt.Outcome.DELIVERED, source=ContactAttempt.Source.REMINDER, occurred_at=now,
                notes=f"Automated reminder {reminder.get_kind_display()} ({reminder.idempotency_key})",
            )
        except ContactRefused as refused:
            decision = refused.decision
            if decision.next_allowed_at is not None:
                # Refused only for reasons that pass with time (quiet hours, caps): try again then.
                return _defer(reminder, decision, str(refused))
            return _cancel(reminder, str(refused), decision=decision_as_dict(decision))
        except ValidationError as exc:
            reminder.state = Reminder.State.FAILED
            reminder.last_error = "; ".join(exc.messages)[:1000]
            reminder.save(update_fields=["state", "last_error", "updated_at"])
            _audit(reminder, "reminders.reminder.failed", reason=reminder.last_error)
            return reminder.state
        token = uuid.uuid4()
        reminder.state = Reminder.State.SENDING
        reminder.attempts += 1
        reminder.claim_token = token
        reminder.claimed_at = timezone.now()
        reminder.send_started_at = None
        reminder.contact_attempt = attempt
        reminder.save(update_fields=["state", "attempts", "claim_token", "claimed_at", "send_started_at",
                                     "contact_attempt", "updated_at"])
        message = _message(reminder)

    # Committed before the provider is called: from here on a crash may have sent the message.
    if not Reminder.objects.filter(pk=reminder_id, claim_token=token).update(send_started_at=timezone.now()):
        return Reminder.objects.get(pk=reminder_id).state
    sender = get_sender(reminder.channel)
    error: Exception | None = None
    provider_id = ""
    try:
        provider_id = sender.send(message)
    except Exception as exc:  # noqa: BLE001 - any provider failure is retried, then reported
        error = exc
        log.warning("reminder %s: send failed: %s", reminder.idempotency_key, exc)
    with transaction.atomic():
        reminder = Reminder.objects.select_for_update().get(pk=reminder_id)
        if reminder.claim_token != token:
            return reminder.state  # recovered by someone else meanwhile; they decided
        if error is None:
            return _mark_sent(reminder, provider_id)
        if sender.supports_lookup and (found := sender.lookup(reminder.idempotency_key)):
            return _mark_sent(reminder, found, after_error=str(error))
        _attempt_failed(reminder)
        reminder.last_error = f"{type(error).__name__}: {error}"[:1000]
        reminder.claim_token = None
        if reminder.attempts >= settings.REMINDER_MAX_ATTEMPTS:
            reminder.state = Reminder.State.FAILED
            reminder.save(update_fields=["state", "last_error", "claim_token", "updated_at"])
            _audit(reminder, "reminders.reminder.failed", reason=reminder.last_error, attempts=reminder.attempts,
                   contact_attempt_id=reminder.contact_attempt_id)
        else:
            delay = min(3600, settings.REMINDER_RETRY_BASE_SECONDS * 2 ** (reminder.attempts - 1))
            reminder.state = Reminder.State.SCHEDULED
            reminder.next_attempt_at = clock.now() + timedelta(seconds=delay)
            reminder.save(update_fields=["state", "next_attempt_at", "last_error", "claim_token", "updated_at"])
            _audit(reminder, "reminders.reminder.retry_scheduled", reason=reminder.last_error,
                   attempts=reminder.attempts, next_attempt_at=reminder.next_attempt_at,
                   contact_attempt_id=reminder.contact_attempt_id)
        return reminder.state


# ---------------------------------------------------------------------------------------------
# Supervisor and agent actions


def reminder_requeue(*, actor: User, reminder: Reminder) -> Reminder:
    """A supervisor sends a failed (or cancelled) reminder again: it goes through the gate anew."""
    with transaction.atomic():
        reminder = Reminder.objects.select_for_update().get(pk=reminder.pk)
        if reminder.state not in (Reminder.State.FAILED, Reminder.State.CANCELLED):
            raise ValidationError(_("Only failed or cancelled reminders can be sent again."))
        before = reminder.state
        reminder.state = Reminder.State.SCHEDULED
        reminder.attempts = 0
        reminder.next_attempt_at = clock.now()
        reminder.save(update_fields=["state", "attempts", "next_attempt_at", "updated_at"])
        _audit(reminder, "reminders.reminder.requeued", actor=actor, previous_state=before)
        return reminder


def reminder_cancel(*, actor: User, reminder: Reminder, reason: str = "") -> Reminder:
    with transaction.atomic():
        reminder = Reminder.objects.select_for_update().get(pk=reminder.pk)
        if reminder.state not in Reminder.PENDING_STATES:
            raise ValidationError(_("Only scheduled or deferred reminders can be cancelled."))
        _cancel(reminder, reason or "cancelled by supervisor", actor=actor)
        return reminder


def notification_mark_read(*, user: User, notification_id: int) -> int:
    return Notification.objects.filter(pk=notification_id, user=user, read_at__isnull=True).update(read_at=timezone.now())
