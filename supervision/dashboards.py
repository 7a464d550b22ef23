"""Aggregate reads for the supervisor dashboards (a handful of GROUP BY queries) and SVG chart geometry."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Aggregate, Count, DurationField, F, IntegerField, Q, Sum, Value
from django.db.models.functions import TruncDate
from django.utils import timezone

from borrowers.models import Complaint
from cases.models import ContactAttempt, Lender, OverdueAccount, Payment, PromiseToPay, User
from compliance import rules
from compliance.models import AuditEvent, Incident
from compliance.selectors import ATTEMPT_REFUSED_ACTIONS

#: Someone was actually reached (the borrower or a third party).
CONTACT_OUTCOMES = (*rules.CONVERSATION_OUTCOMES, "third_party_contact")


@dataclass(frozen=True)
class DashboardFilters:
    date_from: date
    date_to: date
    lender_id: int | None = None
    agent_id: int | None = None

    @property
    def start(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.date_from, time.min))

    @property
    def end(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.date_to + timedelta(days=1), time.min))


@dataclass
class Row:
    key: int | None
    label: str
    attempts: int = 0
    accounts_worked: int = 0
    contacts: int = 0
    rpc: int = 0
    promises_made: int = 0
    promises_kept: int = 0
    promises_broken: int = 0
    recovered: dict[str, Decimal] = field(default_factory=dict)
    refusals: int = 0

    @property
    def contact_rate(self) -> float | None:
        return self.contacts / self.attempts if self.attempts else None

    @property
    def rpc_rate(self) -> float | None:
        return self.rpc / self.attempts if self.attempts else None

    @property
    def contact_rate_text(self) -> str:
        return pct(self.contact_rate)

    @property
    def rpc_rate_text(self) -> str:
        return pct(self.rpc_rate)


def pct(value: float | None) -> str:
    """A rate as the charts and tables show it. One decimal below 10 %: recovery rates are often
    small, and "0%" next to a bar misleads."""
    return "–" if value is None else (f"{value:.1%}" if value < 0.1 else f"{value:.0%}")


#: Trend charts show at most this many days (the last ones of a longer period).
TREND_MAX_DAYS = 92


@dataclass
class Trends:
    days: list[date]
    attempts: dict[date, int]
    contacts: dict[date, int]
    promises_kept: dict[date, int]
    recovered: dict[str, dict[date, Decimal]]  # currency -> day -> amount


@dataclass
class ComplaintRow:
    """Complaints (GB/T 45251 register) of one lender, or of all (``key`` None). ``received`` ..
    ``median_to_answer``: the complaints received in the period, as they stand now (``overdue``: still
    open past the deadline; ``answered_late``: answered on a local day after the deadline).
    ``open_now`` / ``overdue_now``: every open complaint, whenever received (the register's backlog)."""

    key: int | None
    label: str
    received: int = 0
    open: int = 0
    overdue: int = 0
    answered: int = 0
    answered_late: int = 0
    median_to_answer: timedelta | None = None
    open_now: int = 0
    overdue_now: int = 0

    @property
    def median_days_text(self) -> str:
        if self.median_to_answer is None:
            return "–"
        return f"{self.median_to_answer.total_seconds() / 86400:.1f}"


@dataclass
class Dashboard:
    filters: DashboardFilters
    by_lender: list[Row]
    by_agent: list[Row]
    totals: Row
    buckets: list[dict]
    refusals_by_rule: list[tuple[str, int]]
    open_incidents: int = 0
    trends: Trends | None = None
    complaints: list[ComplaintRow] = field(default_factory=list)
    complaint_totals: ComplaintRow | None = None


def _attempt_stats(f: DashboardFilters, group: str) -> dict:
    qs = ContactAttempt.objects.filter(occurred_at__gte=f.start, occurred_at__lt=f.end, direction="outbound")
    if f.lender_id:
        qs = qs.filter(lender_id=f.lender_id)
    if f.agent_id:
        qs = qs.filter(agent_id=f.agent_id)
    rows = qs.values(group).annotate(
        attempts=Count("id"),
        accounts_worked=Count("account_id", distinct=True),
        contacts=Count("id", filter=Q(outcome__in=CONTACT_OUTCOMES)),
        rpc=Count("id", filter=Q(outcome__in=rules.CONVERSATION_OUTCOMES, party="borrower")),
    )
    return {r[group]: r for r in rows}


def _promise_stats(f: DashboardFilters, group: str) -> dict:
    qs = PromiseToPay.objects.filter(created_at__gte=f.start, created_at__lt=f.end)
    if f.lender_id:
        qs = qs.filter(account__lender_id=f.lender_id)
    if f.agent_id:
        qs = qs.filter(created_by_id=f.agent_id)
    rows = qs.values(group).annotate(
        made=Count("id"), kept=Count("id", filter=Q(status="kept")), broken=Count("id", filter=Q(status="broken"))
    )
    return {r[group]: r for r in rows}


def _payment_stats(f: DashboardFilters, group: str) -> dict[int | None, dict[str, Decimal]]:
    qs = Payment.objects.filter(paid_at__gte=f.start, paid_at__lt=f.end)
    if f.lender_id:
        qs = qs.filter(account__lender_id=f.lender_id)
    if f.agent_id:
        qs = qs.filter(account__assigned_agent_id=f.agent_id)
    out: dict = defaultdict(dict)
    for r in qs.values(group, "currency").annotate(total=Sum("amount")):
        out[r[group]][r["currency"]] = r["total"]
    return out


def _refusal_events(f: DashboardFilters):
    qs = AuditEvent.objects.filter(action__in=ATTEMPT_REFUSED_ACTIONS, created_at__gte=f.start, created_at__lt=f.end)
    if f.lender_id:
        qs = qs.filter(lender_id=f.lender_id)
    if f.agent_id:
        qs = qs.filter(actor_id=f.agent_id)
    return qs


def refusals_by_rule(f: DashboardFilters) -> list[tuple[str, int]]:
    qs = _refusal_events(f)
    if connection.vendor == "postgresql":
        # Unnest the violation codes in the database rather than shipping every event's JSON.
        sql, params = qs.order_by().values("data").query.sql_with_params()
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT v->>'code', count(*) FROM ({sql}) e, jsonb_array_elements(e.data->'violations') v"
                " GROUP BY 1 ORDER BY 2 DESC, 1", params)
            return [(code or "?", n) for code, n in cur.fetchall()]
    counts: dict[str, int] = defaultdict(int)
    for data in qs.values_list("data", flat=True).iterator():
        for v in (data or {}).get("violations", []):
            counts[v.get("code", "?")] += 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def recovery_by_bucket(f: DashboardFilters) -> list[dict]:
    """Per bucket and currency: money received in the period against what is still owed."""
    accounts = OverdueAccount.objects.all()
    payments = Payment.objects.filter(paid_at__gte=f.start, paid_at__lt=f.end)
    if f.lender_id:
        accounts = accounts.filter(lender_id=f.lender_id)
        payments = payments.filter(account__lender_id=f.lender_id)
    if f.agent_id:
        accounts = accounts.filter(assigned_agent_id=f.agent_id)
        payments = payments.filter(account__assigned_agent_id=f.agent_id)
    owed = {(r["bucket"], r["currency"]): r["total"] or Decimal(0)
            for r in accounts.values("bucket", "currency").annotate(total=Sum("balance"))}
    got = {(r["account__bucket"], r["currency"]): r["total"] or Decimal(0)
           for r in payments.values("account__bucket", "currency").annotate(total=Sum("amount"))}
    out = []
    for bucket, currency in sorted(set(owed) | set(got)):
        recovered = got.get((bucket, currency), Decimal(0))
        base = recovered + owed.get((bucket, currency), Decimal(0))
        rate = float(recovered / base) if base else None
        out.append({"bucket": bucket, "currency": currency, "recovered": recovered, "outstanding": base - recovered,
                    "rate": rate, "rate_text": pct(rate)})
    return out


def daily_trends(f: DashboardFilters) -> Trends:
    """Per local day: outbound attempts and contacts, promises kept (by promised date) and money
    received per currency. Three GROUP BY queries whatever the period."""
    first = max(f.date_from, f.date_to - timedelta(days=TREND_MAX_DAYS - 1))
    start = timezone.make_aware(datetime.combine(first, time.min))
    tz = timezone.get_current_timezone()
    attempts = ContactAttempt.objects.filter(occurred_at__gte=start, occurred_at__lt=f.end, direction="outbound")
    kept = PromiseToPay.objects.filter(status="kept", due_date__gte=first, due_date__lte=f.date_to)
    payments = Payment.objects.filter(paid_at__gte=start, paid_at__lt=f.end)
    if f.lender_id:
        attempts = attempts.filter(lender_id=f.lender_id)
        kept = kept.filter(account__lender_id=f.lender_id)
        payments = payments.filter(account__lender_id=f.lender_id)
    if f.agent_id:
        attempts = attempts.filter(agent_id=f.agent_id)
        kept = kept.filter(created_by_id=f.agent_id)
        payments = payments.filter(account__assigned_agent_id=f.agent_id)
    att = (attempts.annotate(day=TruncDate("occurred_at", tzinfo=tz)).values("day")
           .annotate(n=Count("id"), contacts=Count("id", filter=Q(outcome__in=CONTACT_OUTCOMES))).order_by())
    recovered: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for r in (payments.annotate(day=TruncDate("paid_at", tzinfo=tz)).values("day", "currency")
              .annotate(total=Sum("amount")).order_by()):
        recovered[r["currency"]][r["day"]] = r["total"]
    rows = list(att)
    return Trends(
        days=[first + timedelta(days=i) for i in range((f.date_to - first).days + 1)],
        attempts={r["day"]: r["n"] for r in rows}, contacts={r["day"]: r["contacts"] for r in rows},
        promises_kept=dict(kept.values("due_date").annotate(n=Count("id")).order_by().values_list("due_date", "n")),
        recovered=dict(sorted(recovered.items())),
    )


def open_incident_count(f: DashboardFilters) -> int:
    qs = Incident.objects.filter(status=Incident.Status.OPEN)
    if f.lender_id:
        qs = qs.filter(lender_id=f.lender_id)
    if f.agent_id:
        qs = qs.filter(agent_id=f.agent_id)
    return qs.count()


class Median(Aggregate):
    """PostgreSQL's ``percentile_cont(0.5)``: the (interpolated) median; works on intervals too."""

    function = "percentile_cont"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"


_COMPLAINT_FIELDS = ("received", "open", "overdue", "answered", "answered_late", "median_to_answer", "open_now",
                     "overdue_now")


def _complaint_queryset(f: DashboardFilters):
    """Complaints received in the period, and every open one (for the backlog). The agent filter keeps
    the complaints about accounts now assigned to that agent (as payments do)."""
    qs = Complaint.objects.filter(Q(created_at__gte=f.start, created_at__lt=f.end) | Q(status=Complaint.Status.OPEN))
    if f.lender_id:
        qs = qs.filter(account__lender_id=f.lender_id)
    if f.agent_id:
        qs = qs.filter(account__assigned_agent_id=f.agent_id)
    return qs.order_by()


def _complaint_stats_sql(f: DashboardFilters, today: date) -> dict[int | None, dict]:
    """One statement on PostgreSQL: per lender (GROUP BY) UNION ALL the same figures over all lenders
    (a median cannot be added up from the lenders' medians). Key None is the total."""
    in_period = Q(created_at__gte=f.start, created_at__lt=f.end)
    is_open, is_answered = Q(status=Complaint.Status.OPEN), Q(status=Complaint.Status.ANSWERED)
    past_deadline = Q(deadline__lt=today)
    figures = {
        "received": Count("id", filter=in_period),
        "open": Count("id", filter=in_period & is_open),
        "overdue": Count("id", filter=in_period & is_open & past_deadline),
        "answered": Count("id", filter=in_period & is_answered),
        # The answer's local day after the deadline: what complaint_answer audits as late.
        "answered_late": Count("id", filter=in_period & is_answered & Q(answered_at__date__gt=F("deadline"))),
        "median_to_answer": Median(F("answered_at") - F("created_at"), filter=in_period & is_answered,
                                   output_field=DurationField()),
        "open_now": Count("id", filter=is_open),
        "overdue_now": Count("id", filter=is_open & past_deadline),
    }
    qs = _complaint_queryset(f)
    per_lender = qs.values(lender=F("account__lender_id")).annotate(**figures)
    overall = qs.annotate(lender=Value(None, output_field=IntegerField())).values("lender").annotate(**figures)
    return {r["lender"]: r for r in per_lender.union(overall, all=True)}


def _complaint_stats_python(f: DashboardFilters, today: date) -> dict[int | None, dict]:
    """The same figures from the rows (other databases; complaints are few next to contact attempts)."""
    out: dict[int | None, dict] = {}
    durations: dict[int | None, list[timedelta]] = defaultdict(list)
    tz = timezone.get_current_timezone()
    for lender_id, status, created_at, deadline, answered_at in _complaint_queryset(f).values_list(
            "account__lender_id", "status", "created_at", "deadline", "answered_at").iterator():
        in_period = f.start <= created_at < f.end
        is_open = status == Complaint.Status.OPEN
        for key in (lender_id, None):
            r = out.setdefault(key, {"lender": key, **dict.fromkeys(_COMPLAINT_FIELDS, 0), "median_to_answer": None})
            r["open_now"] += is_open
            r["overdue_now"] += is_open and deadline < today
            if not in_period:
                continue
            r["received"] += 1
            r["open"] += is_open
            r["overdue"] += is_open and deadline < today
            if not is_open and answered_at is not None:
                r["answered"] += 1
                r["answered_late"] += answered_at.astimezone(tz).date() > deadline
                durations[key].append(answered_at - created_at)
    for key, values in durations.items():
        values.sort()
        mid = len(values) // 2
        out[key]["median_to_answer"] = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
    return out


def complaint_stats(f: DashboardFilters, *, lender_names: dict[int, str]) -> tuple[list[ComplaintRow], ComplaintRow]:
    """(per lender, most received first; total). One query whatever the number of lenders."""
    today = timezone.localdate()
    stats = (_complaint_stats_sql if connection.vendor == "postgresql" else _complaint_stats_python)(f, today)
    rows = [ComplaintRow(key=key, label=lender_names.get(key, f"#{key}"), **{k: r[k] or 0 for k in _COMPLAINT_FIELDS
                                                                             if k != "median_to_answer"},
                         median_to_answer=r["median_to_answer"])
            for key, r in stats.items() if key is not None and (r["received"] or r["open_now"])]
    total = stats.get(None) or {}
    totals = ComplaintRow(key=None, label="", **{k: total.get(k) or 0 for k in _COMPLAINT_FIELDS
                                                  if k != "median_to_answer"},
                          median_to_answer=total.get("median_to_answer"))
    return sorted(rows, key=lambda r: (-r.received, -r.open_now, r.label)), totals


def dashboard(*, filters: DashboardFilters) -> Dashboard:
    f = filters
    lenders = dict(Lender.objects.values_list("pk", "name"))
    agents = dict(User.objects.filter(role="agent").values_list("pk", "username"))

    def build(attempt_key, promise_key, payment_key, names, refusal_key) -> list[Row]:
        att, pro, pay = _attempt_stats(f, attempt_key), _promise_stats(f, promise_key), _payment_stats(f, payment_key)
        ref = dict(_refusal_events(f).order_by().values(refusal_key).annotate(n=Count("id")).values_list(refusal_key, "n"))
        keys = set(att) | set(pro) | set(pay) | set(ref)
        rows = []
        for key in keys:
            if key is None and not att.get(key):
                continue
            a, p = att.get(key, {}), pro.get(key, {})
            rows.append(Row(
                key=key, label=names.get(key, f"#{key}"), attempts=a.get("attempts", 0),
                accounts_worked=a.get("accounts_worked", 0), contacts=a.get("contacts", 0), rpc=a.get("rpc", 0),
                promises_made=p.get("made", 0), promises_kept=p.get("kept", 0), promises_broken=p.get("broken", 0),
                recovered=pay.get(key, {}), refusals=ref.get(key, 0),
            ))
        return sorted(rows, key=lambda r: (-r.attempts, r.label))

    by_lender = build("lender_id", "account__lender_id", "account__lender_id", lenders, "lender_id")
    by_agent = [r for r in build("agent_id", "created_by_id", "account__assigned_agent_id", agents, "actor_id")
                if r.key in agents]
    totals = Row(key=None, label="")
    for r in by_lender:
        for attr in ("attempts", "accounts_worked", "contacts", "rpc", "promises_made", "promises_kept",
                     "promises_broken", "refusals"):
            setattr(totals, attr, getattr(totals, attr) + getattr(r, attr))
        for cur, amount in r.recovered.items():
            totals.recovered[cur] = totals.recovered.get(cur, Decimal(0)) + amount
    complaints, complaint_totals = complaint_stats(f, lender_names=lenders)
    return Dashboard(filters=f, by_lender=by_lender, by_agent=by_agent, totals=totals,
                     buckets=recovery_by_bucket(f), refusals_by_rule=refusals_by_rule(f),
                     open_incidents=open_incident_count(f), trends=daily_trends(f),
                     complaints=complaints, complaint_totals=complaint_totals)


# ---------------------------------------------------------------------------------------------
# Server-rendered SVG bar charts: geometry here, markup in templates/compliance/_bar_chart.html

BAR_H, GAP, LABEL_W, PLOT_W = 22, 6, 200, 360


def bar_chart(*, title: str, items: list[tuple[str, float, str]]) -> dict:
    """Horizontal bars. ``items``: (label, value, text shown at the end of the bar)."""
    peak = max((v for _l, v, _t in items), default=0) or 1
    bars = []
    for i, (label, value, text) in enumerate(items):
        y = i * (BAR_H + GAP)
        bars.append({"label": label[:30], "y": y, "ty": y + BAR_H * 0.7, "w": max(1.0, PLOT_W * value / peak) if value else 0,
                     "text": text, "tx": LABEL_W + (PLOT_W * value / peak if value else 0) + 6})
    return {"title": title, "bars": bars, "height": max(1, len(items)) * (BAR_H + GAP), "label_w": LABEL_W,
            "width": LABEL_W + PLOT_W + 90, "bar_h": BAR_H}


COL_W, COL_GAP, COL_PLOT_H, COL_AXIS = 14, 3, 140, 34


def column_chart(*, title: str, points: list[tuple[date, float, str]]) -> dict:
    """Vertical bars over time (one per day). ``points``: (day, value, text for the tooltip); the
    first, middle and last days are labelled under the axis, the peak value above the plot."""
    peak = max((v for _d, v, _t in points), default=0) or 0
    cols = []
    for i, (day, value, text) in enumerate(points):
        h = COL_PLOT_H * value / peak if peak and value else 0
        cols.append({"x": i * (COL_W + COL_GAP), "y": 16 + COL_PLOT_H - h, "h": h, "label": day.isoformat(),
                     "text": text})
    n = len(points)
    ticks = [{"x": cols[i]["x"], "label": points[i][0].strftime("%m-%d")} for i in sorted({0, n // 2, n - 1})] if n else []
    return {"title": title, "cols": cols, "ticks": ticks, "col_w": COL_W, "base_y": 16 + COL_PLOT_H,
            "tick_y": 16 + COL_PLOT_H + 16, "height": 16 + COL_PLOT_H + COL_AXIS,
            "width": max(1, n) * (COL_W + COL_GAP) + 40, "has_data": bool(peak),
            "peak_text": next((t for _d, v, t in points if v == peak), "") if peak else ""}
