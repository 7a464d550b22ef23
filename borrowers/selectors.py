"""Reads for the borrower page. Everything is scoped to one natural person (``Borrower.person``):
the session holds that key, and an id outside it is a 404, never another person's data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from cases.models import Borrower, Instalment, OverdueAccount, Payment, PromiseToPay, RepaymentPlan
from compliance import rules
from compliance.rules.policy import CooldownRule, FrequencyRule, TimeWindowRule
from compliance.selectors import policy_in_force

from .dates import add_months
from .models import Complaint, Dispute, EducationPage, PlanProposal


def person_borrowers(*, person: str) -> QuerySet[Borrower]:
    """Every lender's record of the person (``b:<id>``: a record with neither ID nor phone stands alone)."""
    if person.startswith("b:"):
        return Borrower.objects.filter(pk=int(person[2:]))
    return Borrower.objects.filter(person_key=person)


def person_accounts(*, person: str) -> QuerySet[OverdueAccount]:
    return (
        OverdueAccount.objects.filter(borrower__in=person_borrowers(person=person))
        .select_related("lender", "borrower")
        .order_by("lender__name", "due_date", "pk")
    )


def person_account_get(*, person: str, account_id: int) -> OverdueAccount:
    """One of the person's accounts, or 404 (another person's id looks exactly like a missing one)."""
    account = person_accounts(person=person).filter(pk=account_id).first()
    if account is None:
        raise Http404
    return account


def person_overview(*, person: str) -> list[OverdueAccount]:
    """The person's accounts with what the page shows, in a fixed number of queries."""
    return list(
        person_accounts(person=person).prefetch_related(
            Prefetch("promises", queryset=PromiseToPay.objects.filter(status="open").order_by("due_date"),
                     to_attr="open_promises"),
            Prefetch("plans", queryset=RepaymentPlan.objects.filter(status="active").prefetch_related(
                Prefetch("instalments", queryset=Instalment.objects.order_by("seq"))), to_attr="active_plans"),
            Prefetch("payments", queryset=Payment.objects.order_by("-paid_at"), to_attr="payment_list"),
            Prefetch("plan_proposals", queryset=PlanProposal.objects.order_by("-created_at"), to_attr="proposals"),
            Prefetch("disputes", queryset=Dispute.objects.order_by("-created_at"), to_attr="dispute_list"),
        )
    )


# ---- the contact rules, in plain words ----------------------------------------------------------


def _label(text: str) -> str:
    # The policies' count labels, translated; an unknown label is shown as written.
    return {
        "calls": _("calls"),
        "contacts": _("contacts"),
        "phone conversations": _("phone conversations"),
        "unanswered call attempts": _("unanswered call attempts"),
        "telephone communications (calls or texts)": _("telephone communications (calls or texts)"),
        "telephone conversation": _("telephone conversation"),
    }.get(text, text)


def _channels(names) -> str:
    words = {"call": _("calls"), "sms": _("text messages"), "email": _("emails"), "letter": _("letters"),
             "visit": _("visits")}
    return ", ".join(str(words.get(c, c)) for c in names)


def _days(days) -> str:
    days = tuple(sorted(days))
    if days == tuple(range(7)):
        return _("every day")
    if days == tuple(range(5)):
        return _("Monday to Friday")
    if days == (5, 6):
        return _("Saturday and Sunday")
    names = {0: _("Mon"), 1: _("Tue"), 2: _("Wed"), 3: _("Thu"), 4: _("Fri"), 5: _("Sat"), 6: _("Sun")}
    return ", ".join(str(names[d]) for d in days)


def _hm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass
class Protections:
    policy: str
    lines: list[str] = field(default_factory=list)
    after_hours_waivable: bool = False


def contact_rules_plain(*, jurisdiction: str) -> Protections:
    """The policy in force for the jurisdiction, each hours and cap rule as one sentence."""
    try:
        policy: rules.Policy = policy_in_force(code=jurisdiction, at=timezone.now())
    except Exception:  # noqa: BLE001 - no policy in force: say nothing rather than something wrong
        return Protections(policy="")
    out = Protections(policy=f"{policy.code} v{policy.version}")
    for rule in policy.rules:
        if isinstance(rule, TimeWindowRule):
            for w in rule.windows:
                out.lines.append(_("%(channels)s only %(days)s between %(start)s and %(end)s, your local time.") % {
                    "channels": _channels(rule.channels).capitalize(), "days": _days(w.days),
                    "start": _hm(w.start), "end": _hm(w.end)})
            if rule.closed_dates:
                out.lines.append(_("No contact at all on public holidays."))
            if rule.consent_waives:
                out.after_hours_waivable = True
                out.lines.append(_("Outside these hours only if you have agreed to it (you can change that below)."))
        elif isinstance(rule, FrequencyRule):
            if rule.period == "day":
                text = _("At most %(max)s %(what)s a day.")
            else:
                text = _("At most %(max)s %(what)s in any %(days)s days.")
            out.lines.append(text % {"max": rule.max, "what": _label(rule.label), "days": rule.days})
        elif isinstance(rule, CooldownRule):
            out.lines.append(_("After a %(what)s, no further call about the same debt for %(days)s days.") % {
                "what": _label(rule.label), "days": rule.days})
    out.lines.append(_("If you dispute a debt, ask us to stop, or have a lawyer, collection contact stops."))
    return out


# ---- complaints and education ---------------------------------------------------------------------


def complaints_list(*, status: str = "") -> list[Complaint]:
    """Open ones first, by deadline; each with ``overdue`` (open past its deadline)."""
    qs = Complaint.objects.select_related("account", "account__lender", "assigned_to").order_by(
        "-status", "deadline", "pk")  # "open" sorts after "answered": reversed puts open first
    if status:
        qs = qs.filter(status=status)
    today = timezone.localdate()
    rows = list(qs[:500])
    for c in rows:
        c.overdue = c.status == Complaint.Status.OPEN and c.deadline < today
    return rows


def education_pages(*, language: str) -> list[EducationPage]:
    """One page per topic in the language, else in the other language (a topic never disappears)."""
    pages: dict[str, EducationPage] = {}
    for page in EducationPage.objects.order_by("position", "slug"):
        if page.slug not in pages or page.language == language:
            pages[page.slug] = page
    return list(pages.values())


# ---- repayment plans the borrower may choose without waiting for anyone -------------------------

CENT = Decimal("0.01")
#: Monthly instalment counts offered for the whole balance (capped at the lender's maximum).
FULL_PLAN_COUNTS = (1, 3, 6, 12)
#: Days from today to a chosen plan's first instalment.
FIRST_INSTALMENT_DAYS = 7


@dataclass(frozen=True)
class PlanOption:
    key: str  # "full-6", "settle-1": what the page posts; the server recomputes the option from it
    settle: bool  # for less than the balance (a settlement at the lender's floor)
    total: Decimal
    currency: str
    instalments: tuple[tuple[date, Decimal], ...]
    percent: Decimal

    @property
    def count(self) -> int:
        return len(self.instalments)

    @property
    def first_amount(self) -> Decimal:
        return self.instalments[0][1]


def _monthly(*, total: Decimal, count: int, first: date) -> tuple[tuple[date, Decimal], ...]:
    """Equal monthly instalments to the cent; the last one takes the remainder, so they add up to ``total``."""
    each = (total / count).quantize(CENT, rounding=ROUND_DOWN)
    amounts = [each] * (count - 1) + [total - each * (count - 1)]
    return tuple((add_months(first, i), a) for i, a in enumerate(amounts))


#: A plan in one of these states is the account's negotiated plan: choosing another would replace it (and withdraw
#: the settlement it pays), so the borrower is offered none while one exists and must propose a change instead.
PLAN_IN_FORCE = (RepaymentPlan.Status.ACTIVE, RepaymentPlan.Status.PENDING)


def plan_in_force(*, account: OverdueAccount) -> bool:
    """The account has an active plan, or one awaiting a supervisor's approval."""
    return account.plans.filter(status__in=PLAN_IN_FORCE).exists()


def plan_options(*, account: OverdueAccount, today: date) -> list[PlanOption]:
    """The plans the lender's terms in force allow for this account now (``finance``'s settlement terms):
    the whole balance in 1, 3, 6 or 12 monthly instalments up to the lender's maximum, and, where the lender
    accepts less for the account's bucket, the floor amount in one payment or up to three. Each is within the
    terms, so choosing one makes an active plan at once (``cases.services.repayment_plan_create`` checks it
    again). An account that is closed, disputed or already on a plan (active or awaiting approval) gets none."""
    from finance.services import settlement_terms_in_force

    if not account.is_open or account.balance <= 0 or account.status == OverdueAccount.Status.DISPUTE:
        return []
    if plan_in_force(account=account):
        return []
    terms = settlement_terms_in_force(lender_id=account.lender_id)
    most = max(1, int(terms.max_instalments))
    first = today + timedelta(days=FIRST_INSTALMENT_DAYS)
    options = [
        PlanOption(key=f"full-{n}", settle=False, total=account.balance, currency=account.currency,
                   instalments=_monthly(total=account.balance, count=n, first=first), percent=Decimal("100"))
        for n in sorted({n for n in FULL_PLAN_COUNTS if n <= most} | {min(most, FULL_PLAN_COUNTS[-1])})
    ]
    floor = terms.floor_percent(account.bucket)
    floor_amount = (account.balance * floor / 100).quantize(CENT, rounding=ROUND_UP)
    if Decimal("0") < floor_amount < account.balance:
        options += [
            PlanOption(key=f"settle-{n}", settle=True, total=floor_amount, currency=account.currency,
                       instalments=_monthly(total=floor_amount, count=n, first=first), percent=floor)
            for n in sorted({1, min(3, most)}) if floor_amount >= CENT * n
        ]
    return options


def balance_parts(*, account: OverdueAccount) -> list[tuple[str, Decimal]]:
    """What the balance is made of (principal, interest, fees, costs as ``finance`` keeps them); the principal
    always, the other parts when not zero."""
    from finance.selectors import account_balance_parts

    parts = account_balance_parts(account=account)
    return [(p, parts[p]) for p in ("principal", "interest", "fees", "costs") if p == "principal" or parts[p]]
