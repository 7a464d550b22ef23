"""Writes of the supervisor console: the what-if replay of a policy version over recorded outreach,
and agents' settings. The console depends on the compliance core and the cases app."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from cases.models import JURISDICTIONS, Borrower, ContactAttempt, Lender, OverdueAccount, User
from compliance import rules
from compliance.audit import audit_log
from compliance.models import Policy
from compliance.selectors import policy_parse, policy_row_in_force

HOLD_FIELDS = Borrower.HOLD_FIELDS


# ---------------------------------------------------------------------------------------------
# What-if replay: how would a policy version have treated the attempts we actually recorded?

WHATIF_MAX_ATTEMPTS = 100_000
WHATIF_MAX_CHANGED = 50  # attempts listed in the drill-down (all are counted)


@dataclass
class ReplayResult:
    policy_label: str
    evaluated: int = 0
    refused: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)


@dataclass
class WhatIfResult:
    code: str
    days: int
    since: datetime
    attempts: int
    truncated: bool
    draft: ReplayResult
    baseline: ReplayResult | None
    notes: list[str] = field(default_factory=list)
    breaches: int = 0  # contacts stored as breaches in the period (reported after the fact)
    #: Attempts decided differently by this version and the one in force (the first WHATIF_MAX_CHANGED):
    #: account_id, account_ref, at, channel, outcome, draft (rule codes), baseline (rule codes)
    changed: list[dict] = field(default_factory=list)
    changed_total: int = 0

    def rule_rows(self) -> list[tuple[str, int, int | None]]:
        codes = sorted(set(self.draft.by_rule) | set(self.baseline.by_rule if self.baseline else ()))
        return [(c, self.draft.by_rule.get(c, 0), self.baseline.by_rule.get(c, 0) if self.baseline else None) for c in codes]


def policy_whatif_replay(
    *, policy: Policy, days: int = 30, now: datetime | None = None, max_attempts: int = WHATIF_MAX_ATTEMPTS
) -> WhatIfResult:
    """Replay the recorded outbound attempts of the last ``days`` days (borrowers of the policy's
    jurisdiction) through ``policy`` and through the version in force today, in chronological order
    per *person* (every lender's record of the same person together, so person-scoped caps count
    as they do live): each attempt is judged against the attempts recorded before it. Read-only.

    Also counts the contacts stored as breaches in the period (reported after the fact against the
    policy then in force). Bounded: at most ``max_attempts`` attempts (one streamed query).
    Borrower holds are today's flags (their history is not versioned), so hold refusals describe
    today's borrowers rather than the past.
    """
    if days < 1 or days > 365:
        raise ValidationError(_("Replay between 1 and 365 days."))
    now = now or timezone.now()
    since = now - timedelta(days=days)
    draft_rules = rules.Policy.from_dict(policy.rules)
    try:
        base_row = policy_row_in_force(code=policy.code, at=now)
    except ValidationError:
        base_row = None
    base_rules = policy_parse(row=base_row) if base_row is not None and base_row.pk != policy.pk else None
    window = max(rules.history_window(draft_rules), rules.history_window(base_rules) if base_rules else timedelta(0))
    in_scope = ContactAttempt.objects.filter(borrower__jurisdiction=policy.code)
    qs = (
        in_scope.filter(occurred_at__gt=since - window)
        .order_by("person_key", "occurred_at", "id")
        .values_list(
            "person_key", "borrower_id", "occurred_at", "channel", "outcome", "account_id", "party", "direction",
            "phone", "other_accounts", "borrower__time_zones", "borrower__after_hours_consent", "second_collector_id",
            "borrower__sms_consent", "borrower__email_consent", "borrower__opted_out",
            *(f"borrower__{f}" for f in HOLD_FIELDS),
        )
    )
    # Holds that reach the person across lenders (scope "person"): one query for the persons with any.
    any_hold = Q()
    for flag in HOLD_FIELDS:
        any_hold |= Q(**{flag: True})
    person_holds: dict[str, set[str]] = {}
    for row in Borrower.objects.filter(any_hold, jurisdiction=policy.code).exclude(person_key="").values_list(
            "person_key", *HOLD_FIELDS):
        person_holds.setdefault(row[0], set()).update(f for f, on in zip(HOLD_FIELDS, row[1:], strict=True) if on)
    draft = ReplayResult(policy_label=f"{policy.code} v{policy.version} ({policy.get_status_display()})")
    base = ReplayResult(policy_label=f"{base_row.code} v{base_row.version}") if base_rules else None
    targets = [(draft_rules, draft)] + ([(base_rules, base)] if base_rules else [])
    truncated = False
    seen = 0
    changed: list[dict] = []
    changed_total = 0
    current_person = None
    # (history, times) per group: the person, or a record without a person key on its own
    groups: dict[object, tuple[list[rules.Attempt], list[datetime]]] = {}
    for row in qs.iterator(chunk_size=5000):
        (person, borrower_id, at, channel, outcome, account_id, party, direction, phone, others, zones, consent,
         partner, sms_ok, email_ok, opted_out) = row[:16]
        if person != current_person:
            current_person, groups = person, {}
        group = groups.setdefault(person or ("b", borrower_id), ([], []))
        history, times = group
        holds = frozenset(flag for flag, on in zip(HOLD_FIELDS, row[16:], strict=True) if on)
        attempt = rules.Attempt(at=at, channel=channel, outcome=outcome, account_id=account_id, party=party,
                                direction=direction, phone=phone, accounts=tuple(others or ()), borrower_id=borrower_id)
        if at > since and direction == "outbound":
            if seen >= max_attempts:
                truncated = True
                break
            seen += 1
            facts = rules.BorrowerFacts(
                time_zones=tuple(zones or ()), holds=holds, after_hours_consent=consent,
                person_holds=frozenset(person_holds.get(person, ())) if person else holds,
                consented=frozenset(c for c, on in (("sms", sms_ok), ("email", email_ok)) if on),
                opted_out=frozenset(opted_out or ()),
            )
            proposal = rules.Proposal(at=at, channel=channel, account_id=account_id, party=party,
                                      direction=direction, phone=phone, collectors=2 if partner else 1,
                                      outcome="" if outcome == rules.PENDING else outcome,
                                      accounts=tuple(others or ()), borrower_id=borrower_id, address=phone)
            lo = bisect_right(times, at - window)
            past = history[lo:]
            decisions = []
            for pol, result in targets:
                decision = rules.evaluate(policy=pol, facts=facts, history=past, proposal=proposal)
                decisions.append(decision)
                result.evaluated += 1
                if not decision.allowed:
                    result.refused += 1
                    for v in decision.violations:
                        result.by_rule[v.code] = result.by_rule.get(v.code, 0) + 1
            if len(decisions) == 2 and decisions[0].allowed != decisions[1].allowed:
                changed_total += 1
                if len(changed) < WHATIF_MAX_CHANGED:
                    changed.append({"account_id": account_id, "at": at, "channel": channel, "outcome": outcome,
                                    "draft": [v.code for v in decisions[0].violations],
                                    "baseline": [v.code for v in decisions[1].violations]})
        history.append(attempt)
        times.append(at)
    notes = []
    if truncated:
        notes.append(f"Stopped after {max_attempts} attempts; the figures cover the earliest persons only.")
    breaches = in_scope.filter(occurred_at__gt=since, is_breach=True).count()
    # The drill-down's account references: one query for the listed attempts.
    refs = dict(OverdueAccount.objects.filter(pk__in={c["account_id"] for c in changed}).values_list("pk", "external_ref"))
    for c in changed:
        c["account_ref"] = refs.get(c["account_id"], f"#{c['account_id']}")
    return WhatIfResult(code=policy.code, days=days, since=since, attempts=seen, truncated=truncated, draft=draft,
                        baseline=base, notes=notes, breaches=breaches, changed=changed, changed_total=changed_total)


# ---------------------------------------------------------------------------------------------
# Agent settings (which lenders' and jurisdictions' work an agent may be given)


def agent_settings_update(*, actor, agent, lender_ids: list[int], jurisdictions: list[str]):
    if not getattr(agent, "is_agent", False):
        raise ValidationError(_("Only agents have lender and jurisdiction settings."))
    known = {code for code, _label in JURISDICTIONS}
    unknown = sorted(set(jurisdictions) - known)
    if unknown:
        raise ValidationError({"jurisdictions": _("Unknown jurisdiction(s): %(codes)s.") % {"codes": ", ".join(unknown)}})
    with transaction.atomic():
        agent = User.objects.select_for_update().get(pk=agent.pk)
        lenders = list(Lender.objects.filter(pk__in=lender_ids).order_by("pk"))
        if len(lenders) != len(set(lender_ids)):
            raise ValidationError({"lenders": _("Unknown lender.")})
        before = {"lenders": sorted(agent.lenders.values_list("pk", flat=True)), "jurisdictions": list(agent.jurisdictions)}
        agent.jurisdictions = sorted(set(jurisdictions))
        agent.full_clean(exclude=["password"])
        agent.save(update_fields=["jurisdictions"])
        agent.lenders.set(lenders)
        after = {"lenders": [lender.pk for lender in lenders], "jurisdictions": agent.jurisdictions}
        audit_log(
            action="cases.agent.settings_changed", actor=actor, subject=agent,
            data={"agent": agent.get_username(), "before": before, "after": after},
        )
        return agent
