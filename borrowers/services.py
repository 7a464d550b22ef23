"""Writes for the borrower page and the disputes workflow. Each one audits in its own transaction.

Borrower actions have no staff actor: they are audited with ``actor_label="borrower"`` and carry the
account, borrower and lender ids, so they appear on the account's timeline on the case page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from cases.gate import contact_check
from cases.models import Borrower, Callback, OverdueAccount, RepaymentPlan, User
from cases.phones import phone_e164_or_raw
from cases.selectors import mask_email, mask_phone
from cases.services import (
    ContactRefused,
    account_status_change,
    borrower_opt_out,
    contact_attempt_record,
    contact_times_set,
    promise_create,
    repayment_plan_create,
)
from compliance.audit import audit_log
from compliance.selectors import decision_as_dict
from servicing import clock
from servicing.throttle import Limit

from .messages import message_hand_off, message_language, message_render, message_template_get, with_opt_out
from .models import (
    AccessToken,
    Complaint,
    ConsentRecord,
    Dispute,
    DisputeEvidence,
    EducationPage,
    PlanProposal,
)
from .selectors import person_account_get, person_borrowers, plan_in_force, plan_options

BORROWER = "borrower"  # the audit actor label of the borrower's own actions
TOKEN_ATTEMPTS = Limit("borrower_token", "THROTTLE_BORROWER_TOKEN")
ADDRESS_ATTEMPTS = Limit("borrower_addr", "THROTTLE_BORROWER_ADDRESS")


def _audit_account(action: str, account: OverdueAccount, *, actor: User | None = None, subject=None, **data) -> None:
    audit_log(action=action, actor=actor, actor_label="" if actor is not None else BORROWER,
              lender_id=account.lender_id, subject=subject or account, account_id=account.pk,
              borrower_id=account.borrower_id, data=data)


SYSTEM_USERNAME = "borrower-page"


def system_user() -> User:
    """The user that stands for the borrower page where a model requires one (PromiseToPay.created_by is
    not blank). Inactive with no usable password: it can never sign in; not an agent, so no queue lists it."""
    user = User.objects.filter(username=SYSTEM_USERNAME).first()
    if user is None:
        user = User(username=SYSTEM_USERNAME, role=User.Role.SUPERVISOR, is_active=False,
                    first_name="Borrower page")
        user.set_unusable_password()
        user.save()
    return user


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# ---- access links ------------------------------------------------------------------------------


def access_link_issue(*, borrower: Borrower, actor: User | None, ttl: timedelta | None = None) -> tuple[AccessToken, str]:
    """A new link for the borrower page. Returns (row, raw token); only the hash is stored."""
    raw = secrets.token_urlsafe(32)
    ttl = ttl or timedelta(hours=settings.BORROWER_LINK_TTL_HOURS)
    with transaction.atomic():
        row = AccessToken(borrower=borrower, token_hash=token_hash(raw), expires_at=timezone.now() + ttl)
        row.full_clean()
        row.save()
        audit_log(action="borrowers.link.issued", actor=actor, lender_id=borrower.lender_id, subject=row,
                  borrower_id=borrower.pk, data={"expires_at": row.expires_at})
    return row, raw


def access_link_url(raw: str) -> str:
    from django.urls import reverse

    return f"{settings.BORROWER_BASE_URL.rstrip('/')}{reverse('borrowers:access', args=[raw])}"


def access_link_send(*, account: OverdueAccount, actor: User | None, channel: str) -> AccessToken:
    """Send a link by SMS or email. The message is outreach: it passes the compliance gate first
    (ContactRefused when it may not be sent now) and is recorded like any other message."""
    from reminders.senders import OutboundMessage

    if channel not in ("sms", "email"):
        raise ValidationError({"channel": _("A link goes by SMS or email.")})
    borrower = account.borrower
    if not (borrower.phones if channel == "sms" else borrower.emails):
        raise ValidationError({"channel": _("The borrower has no address for this channel.")})
    # The gate first: a refused message leaves no token behind.
    attempt = contact_attempt_record(account=account, actor=actor, channel=channel, outcome="delivered",
                                     notes="borrower page link", source="reminder" if actor is None else "web")
    row, raw = access_link_issue(borrower=borrower, actor=actor)
    language = message_language(borrower=borrower)
    custom = message_template_get(lender_id=account.lender_id, kind="borrower_link", language=language)
    with translation.override(language):
        values = {"url": access_link_url(raw), "hours": settings.BORROWER_LINK_TTL_HOURS}
        if custom is not None:  # the lender's own text (checked when saved), with the opt-out always added
            body = with_opt_out(message_render(template=custom.body, party="borrower", account=account,
                                               values=values, extra=frozenset(values)))
            subject = (message_render(template=custom.subject, party="borrower", account=account, values=values,
                                      extra=frozenset(values)) if custom.subject else str(_("Your account")))
        else:
            body = _("%(lender)s: view your account and options at %(url)s (valid %(hours)s hours). "
                     "Reply STOP to opt out.") % {"lender": account.lender.name, **values}
            subject = str(_("Your account"))
    to = attempt.phone if channel == "sms" else str(borrower.emails[0])
    message_hand_off(attempt=attempt, message=OutboundMessage(key=f"borrower-link-{row.pk}", channel=channel, to=to,
                                                              body=body, subject=subject))
    return row


def _factor_ok(borrower: Borrower, factor: str) -> bool:
    expected = borrower.national_id.strip().upper()[-4:]
    # Constant-time compare; a borrower without a national ID cannot be verified this way.
    return len(expected) == 4 and hmac.compare_digest(expected.encode(), factor.strip().upper().encode())


def access_verify(*, raw_token: str, factor: str, client: str) -> AccessToken | None:
    """The link and the second factor, or None. Every failure looks the same to the caller (unknown,
    expired, used, wrong factor, too many tries), so the page tells an attacker nothing. Tries are
    counted per link and per client address whether or not the link exists."""
    ident = token_hash(raw_token)
    over = [TOKEN_ATTEMPTS.hit(ident=ident) > TOKEN_ATTEMPTS.rule[0]]
    if client:
        over.append(ADDRESS_ATTEMPTS.hit(ident=client) > ADDRESS_ATTEMPTS.rule[0])
    with transaction.atomic():
        row = AccessToken.objects.select_for_update().select_related("borrower").filter(token_hash=ident).first()
        if row is None:
            return None
        now = timezone.now()
        reason = ("throttled" if any(over) else "used" if row.used_at else "expired" if row.expires_at <= now
                  else None if _factor_ok(row.borrower, factor) else "wrong_factor")
        if reason is None:
            row.used_at = now
            row.save(update_fields=["used_at"])
        else:
            row.failures += 1
            row.save(update_fields=["failures"])
        audit_log(action="borrowers.access.verified" if reason is None else "borrowers.access.failed",
                  actor_label=BORROWER, lender_id=row.borrower.lender_id, subject=row, borrower_id=row.borrower_id,
                  data={"reason": reason} if reason else {})
        return row if reason is None else None


# ---- actions on the page -----------------------------------------------------------------------


def borrower_promise_make(*, person: str, account_id: int, amount: Decimal, due_date: date):
    account = person_account_get(person=person, account_id=account_id)
    if not account.is_open:
        raise ValidationError(_("This account is closed."))
    with transaction.atomic():
        promise = promise_create(actor=system_user(), account=account, amount=amount, due_date=due_date)
        _audit_account("borrowers.promise.made", account, subject=promise, promise_id=promise.pk, amount=amount,
                       currency=account.currency, due_date=due_date)
    return promise


def _validate_instalments(account: OverdueAccount, instalments: list[tuple[date, Decimal]]) -> Decimal:
    if not instalments:
        raise ValidationError({"instalments": _("A plan needs at least one instalment.")})
    if len(instalments) > 36:
        raise ValidationError({"instalments": _("A plan has at most 36 instalments.")})
    dates = [d for d, _a in instalments]
    if any(a <= 0 for _d, a in instalments):
        raise ValidationError({"instalments": _("Every instalment amount must be positive.")})
    if dates != sorted(dates) or len(set(dates)) != len(dates):
        raise ValidationError({"instalments": _("Instalment dates must be distinct and in order.")})
    if dates[0] < timezone.localdate():
        raise ValidationError({"instalments": _("The first instalment cannot be in the past.")})
    total = sum((a for _d, a in instalments), Decimal("0"))
    if total > account.balance:
        raise ValidationError({"instalments": _("The instalments add up to more than the balance.")})
    return total


def borrower_plan_propose(*, person: str, account_id: int, instalments: list[tuple[date, Decimal]],
                          note: str = "") -> PlanProposal:
    """Stored as a proposal: an agent accepts it (a real plan) or counters it."""
    account = person_account_get(person=person, account_id=account_id)
    if not account.is_open:
        raise ValidationError(_("This account is closed."))
    total = _validate_instalments(account, instalments)
    with transaction.atomic():
        proposal = PlanProposal(account=account, total_amount=total, currency=account.currency, note=note[:500],
                                instalments=[{"due_date": d.isoformat(), "amount": str(a)} for d, a in instalments])
        proposal.full_clean()
        proposal.save()
        _audit_account("borrowers.plan.proposed", account, subject=proposal, proposal_id=proposal.pk,
                       total_amount=total, currency=account.currency, instalments=proposal.instalments)
    return proposal


def borrower_plan_choose(*, person: str, account_id: int, option: str, today: date) -> RepaymentPlan:
    """One of the plans the lender's terms allow (``selectors.plan_options``), chosen on the page: recomputed here
    from its key (the page sends no amounts) and made through ``repayment_plan_create`` like any plan, so it is
    active at once (within the terms). Refused while the account has a plan in force (active or awaiting approval):
    ``repayment_plan_create`` would replace it, and a stale tab or a hand-made POST must not undo a negotiated plan."""
    account = person_account_get(person=person, account_id=account_id)
    with transaction.atomic():
        # Locked so that two submits at once (double click, two tabs) cannot both pass the check below.
        account = OverdueAccount.objects.select_for_update().get(pk=account.pk)
        if plan_in_force(account=account):
            raise ValidationError(_("This account already has a repayment plan. To change it, send a plan "
                                    "proposal and an agent will answer."))
        chosen = next((o for o in plan_options(account=account, today=today) if o.key == option), None)
        if chosen is None:
            raise ValidationError(_("This plan is no longer offered for this account. Reload the page and choose "
                                    "again."))
        plan = repayment_plan_create(actor=system_user(), account=account, total_amount=chosen.total,
                                     instalments=list(chosen.instalments))
        _audit_account("borrowers.plan.chosen", account, subject=plan, plan_id=plan.pk, option=chosen.key,
                       total_amount=chosen.total, currency=chosen.currency, settlement=chosen.settle,
                       status=plan.status)
    return plan


def _may_answer(actor: User, proposal: PlanProposal) -> None:
    if not (actor.is_supervisor or (actor.is_agent and proposal.account.assigned_agent_id == actor.pk)):
        raise ValidationError(_("Only the account's agent or a supervisor can answer this proposal."))


def plan_proposal_accept(*, actor: User, proposal: PlanProposal) -> PlanProposal:
    with transaction.atomic():
        proposal = PlanProposal.objects.select_for_update().select_related("account").get(pk=proposal.pk)
        _may_answer(actor, proposal)
        if proposal.status != PlanProposal.Status.PROPOSED:
            raise ValidationError(_("This proposal was already answered."))
        plan = repayment_plan_create(
            actor=actor, account=proposal.account, total_amount=proposal.total_amount,
            instalments=[(date.fromisoformat(i["due_date"]), Decimal(i["amount"])) for i in proposal.instalments])
        proposal.status, proposal.plan = PlanProposal.Status.ACCEPTED, plan
        proposal.decided_by, proposal.decided_at = actor, timezone.now()
        proposal.save(update_fields=["status", "plan", "decided_by", "decided_at"])
        _audit_account("borrowers.plan.accepted", proposal.account, actor=actor, subject=proposal,
                       proposal_id=proposal.pk, plan_id=plan.pk)
    return proposal


def plan_proposal_counter(*, actor: User, proposal: PlanProposal, note: str) -> PlanProposal:
    note = note.strip()
    if not note:
        raise ValidationError({"note": _("Say what you can offer instead.")})
    with transaction.atomic():
        proposal = PlanProposal.objects.select_for_update().select_related("account").get(pk=proposal.pk)
        _may_answer(actor, proposal)
        if proposal.status != PlanProposal.Status.PROPOSED:
            raise ValidationError(_("This proposal was already answered."))
        proposal.status, proposal.counter_note = PlanProposal.Status.COUNTERED, note[:500]
        proposal.decided_by, proposal.decided_at = actor, timezone.now()
        proposal.save(update_fields=["status", "counter_note", "decided_by", "decided_at"])
        _audit_account("borrowers.plan.countered", proposal.account, actor=actor, subject=proposal,
                       proposal_id=proposal.pk, note=note[:500])
    return proposal


# ---- disputes ----------------------------------------------------------------------------------

_MAGIC = {b"%PDF-": "application/pdf", b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


def evidence_validate(upload) -> tuple[str, str]:
    """(content type, sha256) of an allowed file; the type is read from the bytes, not the client's claim."""
    if upload.size > settings.BORROWER_EVIDENCE_MAX_BYTES:
        raise ValidationError({"evidence": _("A file may be at most %(mb)s MB.") % {
            "mb": settings.BORROWER_EVIDENCE_MAX_BYTES // (1024 * 1024)}})
    upload.seek(0)
    head = upload.read(16)
    kind = next((t for magic, t in _MAGIC.items() if head.startswith(magic)), None)
    if kind is None or kind not in settings.BORROWER_EVIDENCE_TYPES:
        raise ValidationError({"evidence": _("Upload a PDF, JPEG or PNG file.")})
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return kind, digest.hexdigest()


def borrower_dispute_raise(*, person: str, account_id: int, reason: str, text: str, files=()) -> Dispute:
    """The hold goes on at once (the account's status becomes *disputed*, which sets Borrower.dispute,
    read by the compliance gate): no agent outreach until the dispute is resolved or the hold lifted."""
    account = person_account_get(person=person, account_id=account_id)
    if not account.is_open:
        raise ValidationError(_("This account is closed."))
    if reason not in Dispute.Reason.values:
        raise ValidationError({"reason": _("Choose a reason.")})
    if len(files) > 5:
        raise ValidationError({"evidence": _("At most 5 files.")})
    checked = [(f, *evidence_validate(f)) for f in files]
    stored: list = []  # files written to storage by this call: removed again if the transaction rolls back
    try:
        return _dispute_insert(account=account, reason=reason, text=text, checked=checked, stored=stored)
    except BaseException:
        for field in stored:
            field.storage.delete(field.name)
        raise


def _dispute_insert(*, account: OverdueAccount, reason: str, text: str, checked: list, stored: list) -> Dispute:
    with transaction.atomic():
        account = OverdueAccount.objects.select_for_update().get(pk=account.pk)
        dispute = Dispute(account=account, reason=reason, text=text[:5000], prior_status=account.status,
                          deadline=timezone.localdate() + timedelta(days=settings.BORROWER_DISPUTE_DAYS))
        dispute.full_clean()
        dispute.save()
        for upload, kind, digest in checked:
            ev = DisputeEvidence(dispute=dispute, original_name=upload.name[:255], content_type=kind,
                                 size=upload.size, sha256=digest)
            ev.file.save(upload.name, upload, save=False)
            stored.append(ev.file)
            ev.save()
        if account.status != OverdueAccount.Status.DISPUTE:
            account_status_change(actor=None, account=account, status=OverdueAccount.Status.DISPUTE,  # type: ignore[arg-type]
                                  reason="dispute raised by the borrower")
        Borrower.objects.filter(pk=account.borrower_id).update(dispute=True)
        _audit_account("borrowers.dispute.raised", account, subject=dispute, dispute_id=dispute.pk, reason=reason,
                       text=text[:500], deadline=dispute.deadline, evidence=[c[2] for c in checked])
    return dispute


def dispute_verification_request(*, actor: User, dispute: Dispute) -> Dispute:
    with transaction.atomic():
        dispute = Dispute.objects.select_for_update().select_related("account").get(pk=dispute.pk)
        if dispute.status != Dispute.Status.OPEN:
            raise ValidationError(_("Only an open dispute can be sent to the lender."))
        dispute.status, dispute.verification_requested_at = Dispute.Status.VERIFICATION, timezone.now()
        dispute.save(update_fields=["status", "verification_requested_at"])
        _audit_account("borrowers.dispute.verification_requested", dispute.account, actor=actor, subject=dispute,
                       dispute_id=dispute.pk)
    return dispute


def _lift_dispute_hold(*, actor: User, borrower_id: int, account: OverdueAccount) -> bool:
    """The borrower's dispute flag goes off when none of their disputes is still open."""
    still_open = Dispute.objects.filter(account__borrower_id=borrower_id).exclude(
        status__in=Dispute.CLOSED_STATUSES).exists()
    if still_open:
        return False
    return bool(Borrower.objects.filter(pk=borrower_id, dispute=True).update(dispute=False))


def dispute_resolve(*, actor: User, dispute: Dispute, outcome: str, note: str) -> Dispute:
    """Upheld: the account is closed. Rejected: the account returns to its prior status and the hold
    is lifted (when no other dispute of the borrower is open). Lender users resolve their own only."""
    if outcome not in (Dispute.Status.UPHELD, Dispute.Status.REJECTED):
        raise ValidationError({"outcome": _("Choose upheld or rejected.")})
    if not note.strip():
        raise ValidationError({"note": _("Give the reason for the decision.")})
    with transaction.atomic():
        dispute = Dispute.objects.select_for_update().select_related("account").get(pk=dispute.pk)
        # Supervisors decide any dispute; a lender user only its own lender's, once verification was asked.
        if actor.is_lender_user:
            if dispute.account.lender_id != actor.lender_id:
                raise ValidationError(_("Not your lender's dispute."))
            if dispute.status != Dispute.Status.VERIFICATION:
                raise ValidationError(_("Verification has not been requested for this dispute."))
        elif not actor.is_supervisor:
            raise ValidationError(_("Only supervisors and the lender can resolve a dispute."))
        if dispute.status in Dispute.CLOSED_STATUSES:
            raise ValidationError(_("This dispute was already resolved."))
        dispute.status, dispute.resolution_note = outcome, note.strip()[:5000]
        dispute.resolved_by, dispute.resolved_at = actor, timezone.now()
        dispute.save(update_fields=["status", "resolution_note", "resolved_by", "resolved_at"])
        target = OverdueAccount.Status.CLOSED if outcome == Dispute.Status.UPHELD else (
            dispute.prior_status if dispute.prior_status != "dispute" else OverdueAccount.Status.IN_CONTACT)
        account_status_change(actor=actor, account=dispute.account, status=target, reason=f"dispute {outcome}")
        lifted = _lift_dispute_hold(actor=actor, borrower_id=dispute.account.borrower_id, account=dispute.account)
        _audit_account("borrowers.dispute.resolved", dispute.account, actor=actor, subject=dispute,
                       dispute_id=dispute.pk, outcome=outcome, note=note[:500], hold_lifted=lifted)
    return dispute


def borrower_hold_lift(*, actor: User, borrower: Borrower, flag: str, reason: str) -> Borrower:
    """A supervisor lifts a hold in the app (audited, with the reason)."""
    if not actor.is_supervisor:
        raise ValidationError(_("Only supervisors can lift a hold."))
    if flag not in Borrower.HOLD_FIELDS:
        raise ValidationError({"flag": _("Unknown hold.")})
    if not reason.strip():
        raise ValidationError({"reason": _("Give the reason for lifting the hold.")})
    with transaction.atomic():
        borrower = Borrower.objects.select_for_update().get(pk=borrower.pk)
        if not getattr(borrower, flag):
            raise ValidationError(_("This hold is not on."))
        setattr(borrower, flag, False)
        borrower.save(update_fields=[flag, "updated_at"])
        for account in OverdueAccount.objects.filter(borrower=borrower):
            _audit_account("borrowers.hold.lifted", account, actor=actor, subject=borrower, flag=flag,
                           reason=reason.strip()[:500])
    return borrower


def evidence_viewed(*, actor: User, evidence: DisputeEvidence) -> None:
    """Who opened a borrower's evidence file, and when (the file itself is not logged)."""
    account = evidence.dispute.account
    with transaction.atomic():
        _audit_account("borrowers.evidence.viewed", account, actor=actor, subject=evidence,
                       dispute_id=evidence.dispute_id, evidence_id=evidence.pk)


# ---- contact preferences -----------------------------------------------------------------------


def borrower_opt_out_channel(*, person: str, channel: str) -> int:
    """Stop SMS (every number) or email (every address) of every lender's record of the person."""
    if channel not in ("sms", "email"):
        raise ValidationError({"channel": _("Unknown channel.")})
    count = 0
    with transaction.atomic():
        for borrower in person_borrowers(person=person).order_by("pk"):
            addresses = borrower.phones if channel == "sms" else borrower.emails
            for address in addresses:
                borrower_opt_out(borrower=borrower, address=str(address), actor=None, source="borrower_page")
                count += 1
            # borrower_opt_out's event names no account; this one puts it on each account's timeline.
            masked = [mask_phone(str(a)) if channel == "sms" else mask_email(str(a)) for a in addresses]
            for account in borrower.accounts.all():
                _audit_account("borrowers.opt_out.requested", account, subject=borrower, channel=channel,
                               addresses=masked)
    return count


PREFERENCE_FIELDS = ("sms_consent", "email_consent", "after_hours_consent")


def borrower_preferences_set(*, person: str, values: dict[str, bool], windows: list[dict] | None = None) -> list[str]:
    """Channel consents and (where the policy allows it) consent to contact outside hours. Each change
    is kept with its time (ConsentRecord) and audited on every lender's record of the person. ``windows``: the
    times that suit the borrower (``cases.services.contact_times_set``), saved in the same transaction."""
    unknown = set(values) - set(PREFERENCE_FIELDS)
    if unknown:
        raise ValidationError(_("Unknown preference."))
    changed: list[str] = []
    with transaction.atomic():
        for borrower in person_borrowers(person=person).select_for_update().order_by("pk"):
            diff = {k: v for k, v in values.items() if getattr(borrower, k) != v}
            if not diff:
                continue
            for k, v in diff.items():
                setattr(borrower, k, v)
                ConsentRecord.objects.create(borrower=borrower, field=k, value=v)
            borrower.save(update_fields=[*diff, "updated_at"])
            changed.extend(k for k in diff if k not in changed)
            for account in borrower.accounts.all():
                _audit_account("borrowers.preferences.changed", account, subject=borrower, changes=diff,
                               recorded_at=timezone.now())
        first = person_borrowers(person=person).order_by("pk").first()
        if windows is not None and first is not None and contact_times_set(borrower=first, windows=windows,
                                                                            actor=None):
            changed.append("contact_windows")
    return changed



def borrower_callback_request(*, person: str, account_id: int, due_at: datetime) -> Callback:
    """A call back at a time the borrower picks, if the call would be lawful then; for the assigned agent."""
    account = person_account_get(person=person, account_id=account_id)
    if timezone.is_naive(due_at):
        raise ValidationError({"due_at": _("Time must include a time zone offset.")})
    if due_at <= clock.now():
        raise ValidationError({"due_at": _("Pick a time in the future.")})
    if account.assigned_agent_id is None:
        raise ValidationError(_("No agent is assigned to this account yet; please try again later."))
    decision = contact_check(account=account, channel="call", at=due_at)
    with transaction.atomic():
        if not decision.allowed:
            _audit_account("borrowers.callback.refused", account, due_at=due_at, **decision_as_dict(decision))
        else:
            callback = Callback(account=account, agent_id=account.assigned_agent_id, due_at=due_at, channel="call",
                                note=_("Requested by the borrower online"))
            callback.full_clean()
            callback.save()
            _audit_account("borrowers.callback.requested", account, subject=callback, due_at=due_at)
    if not decision.allowed:
        raise ContactRefused(decision)
    return callback


# ---- inbound SMS -------------------------------------------------------------------------------

STOP_WORDS = {"STOP", "退订", "TD", "UNSUBSCRIBE", "T"}


def sms_signature(body: bytes) -> str:
    return hmac.new(settings.SMS_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


def sms_signature_ok(*, body: bytes, signature: str) -> bool:
    # No secret configured: every request is refused (never an open webhook).
    return bool(settings.SMS_WEBHOOK_SECRET) and hmac.compare_digest(sms_signature(body), signature.strip().lower())


def sms_inbound_receive(*, from_number: str, text: str) -> dict:
    """An inbound SMS: STOP/退订/TD opts the number out at once on every record that has it; any reply is
    recorded as an inbound SMS on the borrower's accounts (the case timeline shows it)."""
    word = text.strip().upper()
    stop = word in STOP_WORDS
    number = phone_e164_or_raw(from_number, jurisdiction="CN")
    local = number[3:] if number.startswith("+86") else number
    forms = {from_number.strip(), number, local}
    query = Q()
    for form in forms:
        # JSON containment is PostgreSQL's (indexed there); the embedded SQLite run matches the text and
        # keeps only exact numbers below.
        query |= Q(phones__contains=[form]) if connection.vendor == "postgresql" else Q(phones__icontains=form)
    matched = [b for b in Borrower.objects.filter(query).order_by("pk")[:200] if forms & set(b.phones)][:50]
    recorded = 0
    with transaction.atomic():
        for borrower in matched:
            if stop:
                borrower_opt_out(borrower=borrower, address=number, actor=None, source="sms_stop")
            # A reply is a contact that happened: recorded (inbound, never refused) on each account.
            for account in borrower.accounts.all()[:20]:
                contact_attempt_record(account=account, actor=None, channel="sms", outcome="delivered",
                                       direction="inbound", phone=number, notes=text[:500], source="api")
                recorded += 1
    return {"stop": stop, "borrowers": len(matched), "recorded": recorded}


# ---- complaints (GB/T 45251) ----------------------------------------------------------------------


def _complaint_deadline() -> date:
    return timezone.localdate() + timedelta(days=settings.BORROWER_COMPLAINT_DAYS)


def borrower_complaint_raise(*, person: str, account_id: int, text: str) -> Complaint:
    """A complaint from the borrower page, about one of the person's accounts (any status: a closed
    account can still have been handled badly)."""
    account = person_account_get(person=person, account_id=account_id)
    if not text.strip():
        raise ValidationError({"text": _("Tell us what happened.")})
    with transaction.atomic():
        complaint = Complaint(account=account, source=Complaint.Source.BORROWER, text=text.strip()[:5000],
                              deadline=_complaint_deadline())
        complaint.full_clean()
        complaint.save()
        _audit_account("borrowers.complaint.received", account, subject=complaint, complaint_id=complaint.pk,
                       source=complaint.source, deadline=complaint.deadline)
    return complaint


def complaint_register(*, actor: User, account: OverdueAccount, complainant: str, contact: str,
                       text: str) -> Complaint:
    """A third party's complaint (a relative, a colleague...) entered by staff. Its text is kept, but the
    audit event carries no name or contact detail of the complainant."""
    if not (actor.is_agent or actor.is_supervisor):
        raise ValidationError(_("Agents and supervisors only."))
    if not (complainant.strip() and text.strip()):
        raise ValidationError(_("Give the complainant's name and the complaint."))
    with transaction.atomic():
        complaint = Complaint(account=account, source=Complaint.Source.THIRD_PARTY, complainant=complainant.strip(),
                              contact=contact.strip(), text=text.strip()[:5000], entered_by=actor,
                              deadline=_complaint_deadline())
        complaint.full_clean()
        complaint.save()
        _audit_account("borrowers.complaint.received", account, actor=actor, subject=complaint,
                       complaint_id=complaint.pk, source=complaint.source, deadline=complaint.deadline)
    return complaint


def complaint_assign(*, actor: User, complaint: Complaint, assignee: User) -> Complaint:
    if not actor.is_supervisor:
        raise ValidationError(_("Only supervisors can assign complaints."))
    if not (assignee.is_supervisor and assignee.is_active):
        raise ValidationError({"assignee": _("A complaint is assigned to an active supervisor.")})
    with transaction.atomic():
        complaint = Complaint.objects.select_for_update().select_related("account").get(pk=complaint.pk)
        if complaint.status != Complaint.Status.OPEN:
            raise ValidationError(_("This complaint was already answered."))
        previous = complaint.assigned_to_id
        complaint.assigned_to = assignee
        complaint.save(update_fields=["assigned_to"])
        _audit_account("borrowers.complaint.assigned", complaint.account, actor=actor, subject=complaint,
                       complaint_id=complaint.pk, assignee_id=assignee.pk, previous_id=previous)
    return complaint


def complaint_answer(*, actor: User, complaint: Complaint, answer: str) -> Complaint:
    """The assigned supervisor answers (any supervisor when none is assigned); late answers are kept
    and marked late in the audit, never refused."""
    if not answer.strip():
        raise ValidationError({"answer": _("Write the answer.")})
    with transaction.atomic():
        complaint = Complaint.objects.select_for_update().select_related("account").get(pk=complaint.pk)
        if not actor.is_supervisor or complaint.assigned_to_id not in (None, actor.pk):
            raise ValidationError(_("Only the supervisor the complaint is assigned to can answer it."))
        if complaint.status != Complaint.Status.OPEN:
            raise ValidationError(_("This complaint was already answered."))
        complaint.status, complaint.answer = Complaint.Status.ANSWERED, answer.strip()[:5000]
        complaint.answered_by, complaint.answered_at = actor, timezone.now()
        complaint.full_clean()
        complaint.save(update_fields=["status", "answer", "answered_by", "answered_at"])
        _audit_account("borrowers.complaint.answered", complaint.account, actor=actor, subject=complaint,
                       complaint_id=complaint.pk, late=timezone.localdate() > complaint.deadline)
    return complaint


# ---- education pages -------------------------------------------------------------------------------


def education_page_save(*, actor: User, page: EducationPage, title: str, body: str) -> EducationPage:
    if not actor.is_supervisor:
        raise ValidationError(_("Only supervisors can edit these pages."))
    with transaction.atomic():
        page = EducationPage.objects.select_for_update().get(pk=page.pk)
        before = {"title": page.title, "body_sha256": hashlib.sha256(page.body.encode()).hexdigest()}
        page.title, page.body = title.strip(), body.strip()
        page.full_clean()
        page.save()
        audit_log(action="borrowers.education.changed", actor=actor, subject=page,
                  data={"slug": page.slug, "language": page.language, "before": before,
                        "title": page.title, "body_sha256": hashlib.sha256(page.body.encode()).hexdigest()})
    return page
