"""Outbound messages from templates with checked variables. A message to a third party (a contact
of the borrower) may never name the debt (CN guideline; FDCPA 1692b/c(b)): a template that uses a
debt variable, or whose text names the debt, the lender, the reference or the balance, is refused
before the compliance gate is even asked. Messages then pass the gate like any outreach."""

from __future__ import annotations

import string
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import formats, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cases.importers.selectors import money
from cases.models import Borrower, ContactAttempt, OverdueAccount, User
from cases.services import contact_attempt_record
from compliance.audit import audit_log

DEBT_VARIABLES = frozenset({"lender", "balance", "currency", "ref", "due_date", "days_past_due", "product"})
NEUTRAL_VARIABLES = frozenset({"name", "agent", "callback_number"})
# Words that name a debt in either language; a third-party message must not carry them even as plain text.
DEBT_WORDS = ("debt", "overdue", "owe", "collection", "loan", "repay", "payment", "balance",
              "欠款", "逾期", "债务", "还款", "催收", "贷款", "欠费", "账单")


def message_language(*, borrower: Borrower) -> str:
    """The language of messages to a borrower (and of the lender's template used for them)."""
    return "zh-hans" if borrower.jurisdiction == "CN" else "en"


def money_text(*, amount: Decimal, currency: str) -> str:
    """An amount for a message: thousands separators, two decimals and the currency ("1,234.50 CNY")."""
    return f"{money(amount)} {currency}"


def date_text(*, value: date) -> str:
    """A date in the active language ("2025年3月5日", "March 5, 2025")."""
    return formats.date_format(value, "DATE_FORMAT")


def with_opt_out(body: str) -> str:
    """Electronic messages must offer an opt-out: added (in the active language) when the text has none."""
    if "STOP" in body.upper() or "退订" in body:
        return body
    opt_out = _("Reply STOP to opt out.")  # a plain call: makemessages does not read calls inside f-strings
    return f"{body} {opt_out}"


def template_variables(template: str) -> set[str]:
    try:
        return {field.split(".")[0].split("[")[0] for _t, field, _s, _c in string.Formatter().parse(template) if field}
    except ValueError as exc:
        raise ValidationError({"template": _("The template is malformed.")}) from exc


def template_check(*, template: str, party: str, extra: frozenset[str] = frozenset()) -> set[str]:
    """The variables of a template, or ValidationError: an unknown variable, or (to a third party) a
    debt variable or a word that names the debt. Used on save (MessageTemplate) and before each send."""
    names = template_variables(template)
    unknown = names - DEBT_VARIABLES - NEUTRAL_VARIABLES - extra
    if unknown:
        raise ValidationError({"template": _("Unknown variables: %(names)s") % {"names": ", ".join(sorted(unknown))}})
    if party == ContactAttempt.Party.THIRD_PARTY:
        if names & DEBT_VARIABLES:
            raise ValidationError({"template": _("A message to a third party may not name the debt (%(names)s).") % {
                "names": ", ".join(sorted(names & DEBT_VARIABLES))}})
        if any(w in template.lower() for w in DEBT_WORDS):
            raise ValidationError({"template": _("A message to a third party may not name the debt.")})
    return names


def message_render(*, template: str, party: str, account: OverdueAccount, values: dict | None = None,
                   extra: frozenset[str] = frozenset()) -> str:
    names = template_check(template=template, party=party, extra=extra)
    data = {"lender": account.lender.name, "balance": account.balance, "currency": account.currency,
            "ref": account.external_ref, "due_date": account.due_date.isoformat(),
            "days_past_due": account.days_past_due, "product": account.product, "name": account.borrower.name,
            **(values or {})}
    body = template.format(**{k: data.get(k, "") for k in names})
    if party == ContactAttempt.Party.THIRD_PARTY:
        lowered = body.lower()
        named = [w for w in (*DEBT_WORDS, account.external_ref.lower(), account.lender.name.lower(),
                             f"{account.balance}", money(account.balance)) if w and w in lowered]
        if named:
            raise ValidationError({"template": _("A message to a third party may not name the debt.")})
    return body


def message_send(*, account: OverdueAccount, actor: User | None, channel: str, party: str, to: str,
                 template: str = "", values: dict | None = None, kind: str = "") -> ContactAttempt:
    """Render (checked), pass the gate (recorded or ContactRefused), then hand to the sender. With ``kind``
    and no ``template``, the lender's stored template in the borrower's language is used."""
    from reminders.senders import OutboundMessage

    if not template and kind:
        language = message_language(borrower=account.borrower)
        stored = message_template_get(lender_id=account.lender_id, kind=kind, language=language)
        if stored is None:
            raise ValidationError({"template": _("This lender has no template for this message.")})
        template = stored.body

    if channel not in ("sms", "email"):
        raise ValidationError({"channel": _("A message goes by SMS or email.")})
    try:
        body = message_render(template=template, party=party, account=account, values=values)
    except ValidationError as exc:
        with transaction.atomic():
            audit_log(action="borrowers.message.refused", actor=actor, lender_id=account.lender_id, subject=account,
                      account_id=account.pk, borrower_id=account.borrower_id,
                      data={"channel": channel, "party": party, "reason": exc.messages[0][:300]})
        raise
    attempt = contact_attempt_record(account=account, actor=actor, channel=channel, outcome="delivered", party=party,
                                     phone=to if channel == "sms" else "", email=to if channel == "email" else "",
                                     notes=body[:500], source="web" if actor else "reminder")
    message_hand_off(attempt=attempt, message=OutboundMessage(key=f"message-{attempt.pk}", channel=channel, to=to,
                                                              body=body))
    return attempt


def message_hand_off(*, attempt: ContactAttempt, message) -> str:
    """Give a message the gate has recorded to the provider and keep its id for the receipts. When the provider
    refuses it, the attempt says so (failed, audited) before the error is raised: the record never claims a
    message that was not sent."""
    from reminders.senders import SendError, get_sender

    from .receipts import message_delivery_record, message_send_failed

    try:
        provider_id = get_sender(message.channel).send(message)
    except SendError as exc:
        message_send_failed(attempt=attempt, error=str(exc))
        raise ValidationError(_("The message could not be handed to the provider (%(error)s); it is recorded as "
                                "failed. Try again later.") % {"error": str(exc)[:200]}) from exc
    message_delivery_record(attempt=attempt, channel=message.channel, provider_message_id=provider_id)
    return provider_id


def agent_message_send(*, account: OverdueAccount, actor: User, channel: str, text: str) -> ContactAttempt:
    """An agent's own SMS or email to the borrower, from the case page: to the borrower's first number or
    address, with the opt-out added in the borrower's language; checked, gated and recorded like any message."""
    from cases.gate import default_address

    if channel not in ("sms", "email"):
        raise ValidationError({"channel": _("A message goes by SMS or email.")})
    to = default_address(borrower=account.borrower, channel=channel)
    if not to:
        raise ValidationError({"channel": _("The borrower has no address for this channel.")})
    if not text.strip():
        raise ValidationError({"text": _("Write the message.")})
    with translation.override(message_language(borrower=account.borrower)):
        body = with_opt_out(text.strip())
    return message_send(account=account, actor=actor, channel=channel, party=ContactAttempt.Party.BORROWER, to=to,
                        template=body)


# ---- templates per lender and language, edited by supervisors ---------------------------------------

class TemplateKind(NamedTuple):
    party: str  # to whom it goes
    extra: frozenset[str]  # variables it may use besides the common ones
    required: frozenset[str]  # variables it must use
    excluded: frozenset[str]  # common variables it may not use (nothing supplies them for this message)
    help: str  # for the supervisors' editor


# Automated reminders have no agent on the line and no callback number to offer.
_REMINDER_EXCLUDED = frozenset({"agent", "callback_number"})

TEMPLATE_KINDS = {
    "borrower_link": TemplateKind(
        ContactAttempt.Party.BORROWER, frozenset({"url", "hours"}), frozenset({"url"}), frozenset(),
        gettext_lazy("Sent to the borrower with a link to their own page: {url} is the link (required), {hours} "
                     "how many hours it stays valid.")),
    "contact_request": TemplateKind(
        ContactAttempt.Party.THIRD_PARTY, frozenset(), frozenset(), frozenset(),
        gettext_lazy("Sent to a third party (a contact of the borrower) asking the borrower to call back. It may "
                     "not name the debt, the lender, the reference or any amount.")),
    "promise_due": TemplateKind(
        ContactAttempt.Party.BORROWER, frozenset({"amount"}), frozenset({"amount", "due_date"}), _REMINDER_EXCLUDED,
        gettext_lazy("Automated reminder to the borrower the day before and on the morning of a promised payment: "
                     "{amount} is what is still to pay, with its currency (e.g. 1,234.50 CNY), {due_date} the "
                     "promised date in the borrower's language, {balance} the outstanding balance. Must use {amount} "
                     "and {due_date}; the opt-out is added when the text has none.")),
    "instalment_due": TemplateKind(
        ContactAttempt.Party.BORROWER, frozenset({"amount", "seq"}), frozenset({"amount", "due_date"}),
        _REMINDER_EXCLUDED,
        gettext_lazy("Automated reminder to the borrower the day before and on the morning of an instalment: "
                     "{amount} is the instalment with its currency (e.g. 1,234.50 CNY), {seq} its number, "
                     "{due_date} its date in the borrower's language, {balance} the outstanding balance. Must use "
                     "{amount} and {due_date}; the opt-out is added when the text has none.")),
}


def message_template_kinds() -> list[dict]:
    """For the editor: each kind with its recipient, the variables it may use and those it must use."""
    from .models import MessageTemplate

    rows = []
    for kind, label in MessageTemplate.Kind.choices:
        spec = TEMPLATE_KINDS[kind]
        common = NEUTRAL_VARIABLES | (DEBT_VARIABLES if spec.party == ContactAttempt.Party.BORROWER else frozenset())
        rows.append({"kind": kind, "label": label, "party": ContactAttempt.Party(spec.party).label,
                     "variables": sorted((common - spec.excluded) | spec.extra), "required": sorted(spec.required),
                     "help": spec.help})
    return rows


def message_template_check(*, kind: str, subject: str, body: str) -> None:
    if kind not in TEMPLATE_KINDS:
        raise ValidationError({"kind": _("Unknown message kind.")})
    spec = TEMPLATE_KINDS[kind]
    names = template_check(template=body, party=spec.party, extra=spec.extra)
    subject_names = template_check(template=subject, party=spec.party, extra=spec.extra)
    unavailable = (names | subject_names) & spec.excluded
    if unavailable:
        raise ValidationError({"template": _("Unknown variables: %(names)s") % {
            "names": ", ".join(sorted(unavailable))}})
    missing = spec.required - names
    if missing:
        raise ValidationError({"template": _("The template must use: %(names)s") % {
            "names": ", ".join(sorted(missing))}})
    # Plain {variable} only: "{name.x}", "{name[0]}", "{amount:>9}" pass the variable check but could fail
    # (or show something odd) when the message is sent.
    for text in (body, subject):
        if any(field != field.strip() or not field.isidentifier() or spec_ or conv
               for _t, field, spec_, conv in string.Formatter().parse(text) if field is not None):
            raise ValidationError({"template": _("The template is malformed.")})


def message_template_save(*, actor: User, lender, kind: str, language: str, subject: str, body: str):
    """Create or replace the lender's template for the kind and language (supervisors only; checked, audited)."""
    from .models import MessageTemplate

    if not actor.is_supervisor:
        raise ValidationError(_("Only supervisors can edit message templates."))
    body, subject = body.strip(), subject.strip()
    message_template_check(kind=kind, subject=subject, body=body)
    with transaction.atomic():
        row = MessageTemplate.objects.select_for_update().filter(lender=lender, kind=kind, language=language).first()
        before = row.body if row else None
        row = row or MessageTemplate(lender=lender, kind=kind, language=language)
        row.subject, row.body = subject, body
        row.full_clean()
        row.save()
        audit_log(action="borrowers.template.saved", actor=actor, lender_id=lender.pk, subject=row,
                  data={"kind": kind, "language": language, "before": before, "body": body, "subject": subject})
    return row


def message_template_get(*, lender_id: int, kind: str, language: str):
    from .models import MessageTemplate

    return MessageTemplate.objects.filter(lender_id=lender_id, kind=kind, language=language).first()
