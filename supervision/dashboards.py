"""Aggregate reads for the supervisor dashboards (a handful of GROUP BY queries) and SVG chart geometry."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Q, Sum
from django.utils import timezone

from cases.models import ContactAttempt, Lender, OverdueAccount, Payment, PromiseToPay, User
from compliance import rules
from compliance.models import AuditEvent
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


@dataclass
class Dashboard:
    filters: DashboardFilters
    by_lender: list[Row]
    by_agent: list[Row]
    totals: Row
    buckets: list[dict]
    refusals_by_rule: list[tuple[str, int]]


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
        out.append({"bucket": bucket, "currency": currency, "recovered": recovered, "outstanding": base - recovered,
                    "rate": float(recovered / base) if base else None})
    return out


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
    return Dashboard(filters=f, by_lender=by_lender, by_agent=by_agent, totals=totals,
                     buckets=recovery_by_bucket(f), refusals_by_rule=refusals_by_rule(f))


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
