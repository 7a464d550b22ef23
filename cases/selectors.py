"""Reads on cases, always scoped to what the user may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum, TextField
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from compliance import rules
from servicing import clock

from .gate import contact_check_bulk
from .models import Callback, ContactAttempt, Note, OverdueAccount, Payment, PromiseToPay, RepaymentPlan, User


def account_list_for_user(*, user: User) -> QuerySet[OverdueAccount]:
    """Accounts visible to ``user``: lender users their lender's, agents their assigned ones, supervisors all."""
    qs = OverdueAccount.objects.select_related("lender", "borrower", "assigned_agent")
    if not user.is_authenticated or not user.is_active:
        return qs.none()
    if user.is_supervisor:
        return qs
    if user.is_lender_user:
        return qs.filter(lender_id=user.lender_id)
    if user.is_agent:
        return qs.filter(assigned_agent=user)
    return qs.none()


def contact_attempt_for_user(*, user: User, attempt_id: int) -> ContactAttempt:
    """One attempt on an account ``user`` may see; anything else is a 404."""
    from django.http import Http404

    attempt = (ContactAttempt.objects.select_related("account", "borrower")
               .filter(pk=attempt_id, account__in=account_list_for_user(user=user)).first())
    if attempt is None:
        raise Http404
    return attempt


def contact_attempt_target(*, attempt: ContactAttempt, actor: User | None) -> str:
    """The full number or address of an outreach the gate let start (shown to its agent only then).
    A finished or someone else's attempt shows it masked."""
    email = attempt.channel == ContactAttempt.Channel.EMAIL
    value = (attempt.borrower.emails[0] if attempt.borrower.emails else "") if email else attempt.phone
    mine = actor is not None and attempt.agent_id == getattr(actor, "pk", None)
    if attempt.state == ContactAttempt.State.STARTED and mine:
        return value
    return mask_email(value) if email else mask_phone(value)


def second_collector_choices(*, user: User | None) -> QuerySet[User]:
    """Who may go on a field visit with ``user``: the other active agents and supervisors."""
    qs = User.objects.filter(is_active=True, role__in=(User.Role.AGENT, User.Role.SUPERVISOR)).order_by("username")
    return qs.exclude(pk=user.pk) if user is not None else qs


def mask_phone(value: str) -> str:
    value = str(value)
    return value if len(value) < 7 else f"{value[:3]}****{value[-4:]}"


def mask_email(value: str) -> str:
    name, _at, domain = str(value).partition("@")
    return f"{name[:1]}***@{domain}" if domain else "***"


def mask_national_id(value: str) -> str:
    return value if len(value) < 8 else f"{value[:4]}{'*' * (len(value) - 8)}{value[-4:]}"


# ---------------------------------------------------------------------------------------------
# Agent work queue

#: Queue order, most urgent first (documented in the README and on the queue page):
#: 1. a callback the agent scheduled is due (due time passed, still scheduled);
#: 2. a promise to pay falls due today;
#: 3. the account has a broken promise;
#: 4. higher expected recovery (propensity-to-pay score x balance, scoring app; unscored last);
#: 5. more days past due; 6. higher outstanding balance; 7. oldest account id (stable order).
#: Whether a call is lawful now is decided per page (queue_rows) and splits the page: accounts that
#: may not be contacted now are shown apart, never as workable.
QUEUE_ORDER = ("-callback_due", "-promise_today", "-broken_promise",
               F("score__expected_recovery").desc(nulls_last=True), "-days_past_due", "-balance", "id")


def account_queue(
    *,
    user: User,
    bucket: str = "",
    status: str = "",
    lender_id: int | None = None,
    agent_id: int | None = None,
    search: str = "",
    now: datetime | None = None,
    today: date | None = None,
) -> QuerySet[OverdueAccount]:
    """The user's open accounts in priority order, as a lean queryset of the account table only.

    Paginate it (COUNT + one page of ids), then load the page with ``queue_page_load``: joining
    borrowers and lenders only for the page's rows keeps the big sort on one narrow table.
    """
    now = now or clock.now()
    today = today or timezone.localdate(now)
    qs = account_list_for_user(user=user).select_related(None).filter(status__in=OverdueAccount.OPEN_STATUSES)
    if bucket:
        qs = qs.filter(bucket=bucket)
    if status:
        qs = qs.filter(status=status)
    if lender_id:
        qs = qs.filter(lender_id=lender_id)
    if agent_id:
        qs = qs.filter(assigned_agent_id=agent_id)
    search = search.strip()
    if search:
        cond = Q(borrower__name__icontains=search) | Q(external_ref__icontains=search)
        digits = "".join(ch for ch in search if ch.isdigit())
        if len(digits) >= 4:
            qs = qs.annotate(_phones=Cast("borrower__phones", TextField()))
            cond |= Q(_phones__contains=digits)
        qs = qs.filter(cond)
    return _with_queue_flags(qs, now=now, today=today).order_by(*QUEUE_ORDER)


def _with_queue_flags(qs: QuerySet[OverdueAccount], *, now: datetime, today: date) -> QuerySet[OverdueAccount]:
    return qs.annotate(
        callback_due=Exists(Callback.objects.filter(account=OuterRef("pk"), status="scheduled", due_at__lte=now)),
        promise_today=Exists(PromiseToPay.objects.filter(account=OuterRef("pk"), status="open", due_date=today)),
        broken_promise=Exists(PromiseToPay.objects.filter(account=OuterRef("pk"), status="broken")),
    )


def _queue_columns(*, now: datetime, today: date | None) -> dict:
    """The queue's display columns as subqueries: the last outcome, the attempts since midnight (the current
    time zone, i.e. the agent's) and the amount of open promises to pay."""
    today = today or timezone.localdate(now)
    midnight = timezone.make_aware(datetime.combine(today, time.min))
    attempts = ContactAttempt.objects.filter(account=OuterRef("pk")).exclude(outcome="pending")
    return {
        "last_outcome": Subquery(attempts.order_by("-occurred_at").values("outcome")[:1]),
        "attempts_today": Coalesce(Subquery(
            ContactAttempt.objects.filter(account=OuterRef("pk"), occurred_at__gte=midnight)
            .order_by().values("account").annotate(n=Count("pk")).values("n")), 0),
        "open_promise_amount": Subquery(
            PromiseToPay.objects.filter(account=OuterRef("pk"), status="open")
            .order_by().values("account").annotate(total=Sum(F("amount") - F("paid_amount"))).values("total")),
    }


def queue_page_load(*, user: User, ids: list[int], now: datetime, today: date | None = None,
                    columns: bool = True) -> list[OverdueAccount]:
    """One page of the queue with borrower, lender and lock holder, in the order of ``ids`` (one query),
    with the display columns (``_queue_columns``) as subqueries of that same query unless ``columns`` is
    False: rows that are only being decided (callable now, save & next) do not need them."""
    qs = account_list_for_user(user=user).select_related("locked_by", "score").filter(pk__in=ids)
    if columns:
        qs = qs.annotate(**_queue_columns(now=now, today=today))
    by_id = {a.pk: a for a in _with_queue_flags(qs, now=now, today=today or timezone.localdate(now))}
    return [by_id[i] for i in ids if i in by_id]


def queue_columns_attach(*, accounts: list[OverdueAccount], now: datetime, today: date | None = None) -> None:
    """The display columns for rows loaded without them, once they are the rows shown (one query)."""
    if not accounts:
        return
    rows = (OverdueAccount.objects.filter(pk__in=[a.pk for a in accounts]).annotate(**_queue_columns(now=now, today=today))
            .values_list("pk", "last_outcome", "attempts_today", "open_promise_amount"))
    by_id = {pk: rest for pk, *rest in rows}
    for a in accounts:
        a.last_outcome, a.attempts_today, a.open_promise_amount = by_id.get(a.pk, (None, 0, None))


def queue_callable_rows(*, user: User, qs: QuerySet[OverdueAccount], now: datetime, scan: int = 500) -> list[QueueRow]:
    """"Callable now" filter: the rows among the first ``scan`` of the queue that may be called now, in
    queue order (lawfulness is decided in bulk, so a fixed number of queries)."""
    ids = list(qs.values_list("pk", flat=True)[:scan])
    rows = queue_rows(user=user, accounts=queue_page_load(user=user, ids=ids, now=now, columns=False), at=now)
    return [row for row in rows if row.workable]


@dataclass
class QueueRow:
    account: OverdueAccount
    decision: rules.Decision | None  # None: no policy published for the borrower's jurisdiction
    locked_by_other: bool

    @property
    def workable(self) -> bool:
        """Offered to the agent only when a call is lawful now (unknown counts as not)."""
        return self.decision is not None and self.decision.allowed


def queue_rows(*, user: User, accounts: list[OverdueAccount], at: datetime, channel: str = "call") -> list[QueueRow]:
    """Contact status for a page of accounts in bulk: policies and history in two queries, whatever the page size."""
    decisions = contact_check_bulk(accounts=accounts, channels=(channel,), at=at)
    return [
        QueueRow(
            account=a,
            decision=decisions[(a.pk, channel)],
            locked_by_other=bool(a.locked_by_id and a.locked_by_id != user.pk and a.locked_until and a.locked_until > at),
        )
        for a in accounts
    ]


def queue_next_workable(*, user: User, after_id: int, now: datetime, look_ahead: int = 50,
                        scan: int = 500) -> int | None:
    """The first account of ``user``'s queue, other than ``after_id``, that may be called now and is not
    locked by someone else ("save & next"). Decided in bulk ``look_ahead`` accounts at a time, so the
    common case is a fixed number of queries; an agent whose top accounts are all asleep or on hold still
    gets the first callable one, down to ``scan`` accounts."""
    queue = account_queue(user=user, now=now).exclude(pk=after_id).values_list("pk", flat=True)
    for start in range(0, scan, look_ahead):
        ids = list(queue[start:start + look_ahead])
        rows = queue_rows(user=user, accounts=queue_page_load(user=user, ids=ids, now=now, columns=False), at=now)
        found = next((row.account.pk for row in rows if row.workable and not row.locked_by_other), None)
        if found is not None or len(ids) < look_ahead:
            return found
    return None


# ---------------------------------------------------------------------------------------------
# Case page


TIMELINE_DUPLICATE_ACTIONS = (
    "cases.contact_attempt.recorded", "cases.contact_attempt.started", "cases.contact_attempt.completed", "cases.promise.created", "cases.repayment_plan.created",
    "cases.payment.recorded", "cases.note.added", "cases.callback.scheduled",
)


@dataclass
class TimelineEntry:
    kind: str  # attempt, promise, plan, payment, note, callback, audit
    at: datetime
    obj: object


def account_timeline(*, account: OverdueAccount, limit: int = 100) -> list[TimelineEntry]:
    """Everything that happened on the account, newest first (a fixed number of queries)."""
    from compliance.models import AuditEvent

    entries: list[TimelineEntry] = []
    # Attempts on this debt, and attempts on another debt of the borrower that were also about this one.
    about = Q(account=account) | Q(pk__in=account.covered_attempts.values("attempt_id"))
    for a in ContactAttempt.objects.filter(about).select_related("agent").order_by("-occurred_at")[:limit]:
        entries.append(TimelineEntry("attempt", a.occurred_at, a))
    for p in PromiseToPay.objects.filter(account=account).select_related("created_by").order_by("-created_at")[:limit]:
        entries.append(TimelineEntry("promise", p.created_at, p))
    for p in (RepaymentPlan.objects.filter(account=account).select_related("created_by")
              .prefetch_related("instalments").order_by("-created_at")[:limit]):
        entries.append(TimelineEntry("plan", p.created_at, p))
    for p in Payment.objects.filter(account=account).select_related("recorded_by").order_by("-paid_at")[:limit]:
        entries.append(TimelineEntry("payment", p.paid_at, p))
    for n in Note.objects.filter(account=account).select_related("author").order_by("-created_at")[:limit]:
        entries.append(TimelineEntry("note", n.created_at, n))
    for c in Callback.objects.filter(account=account).select_related("agent").order_by("-created_at")[:limit]:
        entries.append(TimelineEntry("callback", c.created_at, c))
    # Audit events that merely restate a record shown above are left out; refusals, status and
    # assignment changes, locks and PII views are only in the audit log, so they are shown.
    audit = AuditEvent.objects.filter(account_id=account.pk).exclude(action__in=TIMELINE_DUPLICATE_ACTIONS)
    for e in audit.order_by("-created_at")[:limit]:
        entries.append(TimelineEntry("audit", e.created_at, e))
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit * 2]


def account_contact_status(*, account: OverdueAccount, at: datetime) -> dict[str, rules.Decision | None]:
    """The compliance decision for every channel now (two queries)."""
    decisions = contact_check_bulk(accounts=[account], channels=tuple(ContactAttempt.Channel.values), at=at)
    return {ch: decisions[(account.pk, ch)] for ch in ContactAttempt.Channel.values}
