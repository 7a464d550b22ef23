"""Outbound messages from templates with checked variables. A message to a third party (a contact
of the borrower) may never name the debt (CN guideline; FDCPA 1692b/c(b)): a template that uses a
debt variable, or whose text names the debt, the lender, the reference or the balance, is refused
before the compliance gate is even asked. Messages then pass the gate like any outreach."""

from __future__ import annotations

import string

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from cases.models import ContactAttempt, OverdueAccount, User
from cases.services import contact_attempt_record
from compliance.audit import audit_log

DEBT_VARIABLES = frozenset({"lender", "balance", "currency", "ref", "due_date", "days_past_due", "product"})
NEUTRAL_VARIABLES = frozenset({"name", "agent", "callback_number"})
# Words that name a debt in either language; a third-party message must not carry them even as plain text.
DEBT_WORDS = ("debt", "overdue", "owe", "collection", "loan", "repay", "payment", "balance",
              "欠款", "逾期", "债务", "还款", "催收", "贷款", "欠费", "账单")


def template_variables(template: str) -> set[str]:
    try:
        return {field.split(".")[0].split("[")[0] for _t, field, _s, _c in string.Formatter().parse(template) if field}
    except ValueError as exc:
        raise ValidationError({"template": _("The template is malformed.")}) from exc


def message_render(*, template: str, party: str, account: OverdueAccount, values: dict | None = None) -> str:
    names = template_variables(template)
    unknown = names - DEBT_VARIABLES - NEUTRAL_VARIABLES
    if unknown:
        raise ValidationError({"template": _("Unknown variables: %(names)s") % {"names": ", ".join(sorted(unknown))}})
    if party == ContactAttempt.Party.THIRD_PARTY and names & DEBT_VARIABLES:
        raise ValidationError({"template": _("A message to a third party may not name the debt (%(names)s).") % {
            "names": ", ".join(sorted(names & DEBT_VARIABLES))}})
    data = {"lender": account.lender.name, "balance": account.balance, "currency": account.currency,
            "ref": account.external_ref, "due_date": account.due_date.isoformat(),
            "days_past_due": account.days_past_due, "product": account.product, "name": account.borrower.name,
            **(values or {})}
    body = template.format(**{k: data.get(k, "") for k in names})
    if party == ContactAttempt.Party.THIRD_PARTY:
        lowered = body.lower()
        named = [w for w in (*DEBT_WORDS, account.external_ref.lower(), account.lender.name.lower(),
                             f"{account.balance}") if w and w in lowered]
        if named:
            raise ValidationError({"template": _("A message to a third party may not name the debt.")})
    return body


def message_send(*, account: OverdueAccount, actor: User | None, channel: str, party: str, to: str,
                 template: str, values: dict | None = None) -> ContactAttempt:
    """Render (checked), pass the gate (recorded or ContactRefused), then hand to the sender."""
    from reminders.senders import OutboundMessage, get_sender

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
    get_sender(channel).send(OutboundMessage(key=f"message-{attempt.pk}", channel=channel, to=to, body=body))
    return attempt
