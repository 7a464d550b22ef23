"""Reads for the compliance gate: the policy in force, the borrower's facts and recent history."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError

from . import rules
from .models import Policy

# Parsed policies are immutable, so caching by (code, version) is safe across requests.
_PARSED: dict[tuple[str, int], rules.Policy] = {}


def policy_parse(*, row: Policy) -> rules.Policy:
    key = (row.code, row.version)
    parsed = _PARSED.get(key)
    if parsed is None:
        parsed = _PARSED[key] = rules.Policy.from_dict(row.rules)
    return parsed


def policy_row_in_force(*, code: str, at: datetime) -> Policy:
    row = (
        Policy.objects.filter(code=code, status=Policy.Status.PUBLISHED, effective_from__lte=at)
        .order_by("-effective_from", "-version")
        .first()
    )
    if row is None:
        raise ValidationError(f"No published contact policy for jurisdiction {code!r} at {at.isoformat()}.")
    return row


def policy_in_force(*, code: str, at: datetime) -> rules.Policy:
    return policy_parse(row=policy_row_in_force(code=code, at=at))


def borrower_facts(*, borrower) -> rules.BorrowerFacts:
    return rules.BorrowerFacts(
        time_zones=tuple(borrower.time_zones) or (settings.TIME_ZONE,),
        holds=borrower.holds,
        after_hours_consent=borrower.after_hours_consent,
    )


def borrower_history(*, borrower_id: int, policy: rules.Policy, at: datetime) -> list[rules.Attempt]:
    """Attempts the engine needs: everything on this borrower since ``at`` minus the policy's look-back."""
    from cases.models import ContactAttempt

    rows = ContactAttempt.objects.filter(
        borrower_id=borrower_id, occurred_at__gt=at - rules.history_window(policy)
    ).values_list("occurred_at", "channel", "outcome", "account_id", "party", "direction", "phone")
    return [
        rules.Attempt(at=o, channel=c, outcome=out, account_id=a, party=p, direction=d, phone=ph)
        for o, c, out, a, p, d, ph in rows
    ]


def contact_check(
    *,
    account,
    channel: str,
    at: datetime,
    direction: str = "outbound",
    party: str = "borrower",
    phone: str = "",
) -> rules.Decision:
    """Would this outreach be lawful? Pure read: records nothing."""
    borrower = account.borrower
    policy = policy_in_force(code=borrower.jurisdiction, at=at)
    proposal = rules.Proposal(
        at=at, channel=channel, account_id=account.pk, party=party, direction=direction,
        phone=phone or default_phone(borrower=borrower, channel=channel),
    )
    return rules.evaluate(
        policy=policy,
        facts=borrower_facts(borrower=borrower),
        history=borrower_history(borrower_id=borrower.pk, policy=policy, at=at),
        proposal=proposal,
    )


def default_phone(*, borrower, channel: str) -> str:
    if channel in ("call", "sms") and borrower.phones:
        return str(borrower.phones[0])
    return ""


def decision_as_dict(decision: rules.Decision) -> dict:
    return {
        "allowed": decision.allowed,
        "violations": [{"code": v.code, "message": v.message, "citation": v.citation} for v in decision.violations],
        "next_allowed_at": decision.next_allowed_at.isoformat() if decision.next_allowed_at else None,
        "policy": f"{decision.policy_code} v{decision.policy_version}",
    }
