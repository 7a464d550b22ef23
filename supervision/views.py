"""Supervisor console (the supervision app; it depends on compliance and cases, never the reverse): audit log, dashboards, policies and what-if replay, agent settings.

Every view is wrapped in ``supervisor_required``: anonymous users go to the login page, signed-in
users who are not supervisors get a 403. Views stay thin: selectors read, services write.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponse, JsonResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cases.importers.selectors import money
from cases.models import User
from cases.views.presenters import RULE_TITLES
from compliance import selectors as core_selectors
from compliance import services as core_services
from compliance.models import Incident, Policy

from . import dashboards, selectors, services
from .forms import (
    RULE_FIELD_LABELS,
    AgentSettingsForm,
    AuditSearchForm,
    DashboardFilterForm,
    PolicyDraftForm,
    PolicyRulesForm,
    WhatIfForm,
)

EXPORT_MAX_ROWS = 1_000_000  # one Excel sheet's limit; CSV follows the same cap
EXPORT_COLUMNS = ["id", "created_at", "actor", "lender_id", "action", "subject", "account_id", "borrower_id",
                  "policy", "summary", "hash"]


def supervisor_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (user.is_active and user.is_supervisor):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def _assignment_url() -> str | None:
    try:
        return reverse("assignment")
    except NoReverseMatch:  # built by another part of the console; absent until then
        return None


# ---------------------------------------------------------------------------------------------
# Dashboards


@require_GET
@supervisor_required
def home(request):
    form = DashboardFilterForm(request.GET or None)
    if form.is_bound and form.is_valid():
        d = form.cleaned_data
    else:
        today = timezone.localdate()
        d = {"date_from": today - timedelta(days=29), "date_to": today, "lender": None, "agent": None}
        if not form.is_bound:
            form = DashboardFilterForm(initial=d)
    filters = dashboards.DashboardFilters(
        date_from=d["date_from"], date_to=d["date_to"],
        lender_id=d["lender"].pk if d.get("lender") else None, agent_id=d["agent"].pk if d.get("agent") else None,
    )
    board = dashboards.dashboard(filters=filters)
    pct = dashboards.pct
    titles = {code: str(RULE_TITLES.get(code, code)) for code, _n in board.refusals_by_rule}
    trends = board.trends
    trend_charts = [
        dashboards.column_chart(title=_("Contacts per day"), points=[
            (d, trends.contacts.get(d, 0), f"{d:%Y-%m-%d}: {trends.contacts.get(d, 0)} / {trends.attempts.get(d, 0)}")
            for d in trends.days]),
        dashboards.column_chart(title=_("Promises kept per day"), points=[
            (d, trends.promises_kept.get(d, 0), f"{d:%Y-%m-%d}: {trends.promises_kept.get(d, 0)}") for d in trends.days]),
        *(dashboards.column_chart(
            title=_("Recovered per day (%(currency)s)") % {"currency": cur}, points=[
                (d, float(by_day.get(d, 0)), f"{d:%Y-%m-%d}: {money(by_day.get(d, 0))} {cur}") for d in trends.days])
          for cur, by_day in trends.recovered.items()),
    ]
    charts = [
        dashboards.bar_chart(title=_("Contact rate by agent"),
                             items=[(r.label, r.contact_rate or 0, pct(r.contact_rate)) for r in board.by_agent[:15]]),
        dashboards.bar_chart(title=_("Right-party contact rate by lender"),
                             items=[(r.label, r.rpc_rate or 0, pct(r.rpc_rate)) for r in board.by_lender[:15]]),
        dashboards.bar_chart(title=_("Promises"), items=[
            (_("Made"), board.totals.promises_made, str(board.totals.promises_made)),
            (_("Kept"), board.totals.promises_kept, str(board.totals.promises_kept)),
            (_("Broken"), board.totals.promises_broken, str(board.totals.promises_broken)),
        ]),
        dashboards.bar_chart(title=_("Recovery rate by bucket"), items=[
            (f"{b['bucket']} {b['currency']}", b["rate"] or 0, pct(b["rate"])) for b in board.buckets
        ]),
        dashboards.bar_chart(title=_("Compliance refusals by rule"),
                             items=[(titles[code], n, str(n)) for code, n in board.refusals_by_rule[:15]]),
    ]
    return render(request, "compliance/dashboard.html", {
        "form": form, "board": board, "charts": charts, "trend_charts": trend_charts,
        "refusal_rows": [(code, titles[code], n) for code, n in board.refusals_by_rule],
        "last_verification": core_selectors.audit_verification_last(),
    })


# ---------------------------------------------------------------------------------------------
# Audit log


def _audit_form(request) -> tuple[AuditSearchForm, core_selectors.AuditFilters | None]:
    form = AuditSearchForm(request.GET)
    if not form.is_valid():
        return form, None
    return form, form.filters()


def _before(request) -> int | None:
    try:
        value = int(request.GET.get("before", ""))
    except ValueError:
        return None
    return value if value > 0 else None


@require_GET
@supervisor_required
def audit_log(request):
    form = AuditSearchForm(request.GET)
    filters = form.filters() if form.is_valid() else None
    term = form.term() if filters else ""
    before = _before(request)
    page = selectors.audit_search_page(filters=filters, term=term, before_id=before) if filters else None
    # Bounded count (at most 10,001 rows read), on the first page only: older pages keep the total.
    count = selectors.audit_search_count(filters=filters, term=term) if filters and before is None else None
    query = request.GET.copy()
    query.pop("before", None)
    older = None
    if page and page.next_before_id:
        query["before"] = page.next_before_id
        older = query.urlencode()
        query.pop("before")
    last = core_selectors.audit_verification_last()
    requested = request.session.get(VERIFY_SESSION_KEY)
    # A verification asked for and not finished yet: the page polls until a newer result exists.
    verifying = requested is not None and (last.pk if last else 0) <= requested
    if requested is not None and not verifying:
        del request.session[VERIFY_SESSION_KEY]
    return render(request, "compliance/audit_log.html", {
        "form": form, "page": page,
        "rows": selectors.audit_rows(events=page.events if page else [], reveal_names=request.user.is_supervisor),
        "count": count,
        "older_query": older, "export_query": query.urlencode(), "first_page": before is None,
        "action_codes": core_selectors.audit_action_codes(), "last_verification": last, "verifying": verifying,
    })


def _safe(value) -> str:
    """Spreadsheet formula injection: a leading = + - @ tab or CR makes the cell text."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _export_row(e) -> list[str]:
    return [_safe(v) for v in (
        e.id, e.created_at.isoformat(), e.actor_label, e.lender_id, e.action,
        f"{e.subject_type}:{e.subject_id}" if e.subject_type else "", e.account_id, e.borrower_id,
        f"{e.policy_code} v{e.policy_version}" if e.policy_code else "", core_selectors.audit_event_summary(event=e), e.hash,
    )]


class _Echo:
    def write(self, value):
        return value


@require_GET
@supervisor_required
def audit_export(request, fmt: str):
    if fmt not in ("csv", "xlsx"):
        raise Http404
    form, filters = _audit_form(request)
    if filters is None:
        return HttpResponse(_("Invalid filters."), status=400, content_type="text/plain; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    events = selectors.audit_search_iter(filters=filters, term=form.term(), max_rows=EXPORT_MAX_ROWS)
    if fmt == "csv":
        writer = csv.writer(_Echo())

        def stream():
            yield "\ufeff"  # BOM so that Excel opens UTF-8 (Chinese text) correctly
            yield writer.writerow(EXPORT_COLUMNS)
            for e in events:
                yield writer.writerow(_export_row(e))

        response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("audit")
    ws.append(EXPORT_COLUMNS)
    for e in events:
        # Every value as a string cell: never a formula, whatever it starts with.
        row = []
        for value in _export_row(e):
            cell = WriteOnlyCell(ws, value=value)
            cell.data_type = "s"
            row.append(cell)
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    response = HttpResponse(
        out.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.xlsx"'
    return response


@require_GET
@supervisor_required
def audit_account(request, account_id: int):
    from cases.selectors import account_list_for_user

    account = get_object_or_404(account_list_for_user(user=request.user), pk=account_id)
    page = core_selectors.audit_event_page(filters=core_selectors.AuditFilters(account_id=account.pk),
                                      before_id=_before(request), limit=100)
    return render(request, "compliance/audit_account.html", {
        "account": account, "page": page,
        "rows": selectors.audit_rows(events=page.events, reveal_names=request.user.is_supervisor),
    })


VERIFY_SESSION_KEY = "audit_verify_after"


@require_GET
@supervisor_required
def audit_event(request, pk: int):
    """Everything one event holds, with names for its ids and its data formatted."""
    found = selectors.audit_event_detail(event_id=pk, reveal_names=request.user.is_supervisor)
    if found is None:
        raise Http404
    row, data = found
    return render(request, "compliance/audit_event.html", {"row": row, "e": row.event, "data": data})


@require_POST
@supervisor_required
def audit_verify_start(request):
    """Queue a verification of every chain (Celery; in-process in the embedded run). The request is
    audited; the result is the AuditVerification row the task writes."""
    from compliance.audit import audit_log as write_audit
    from compliance.tasks import audit_verify_task

    last = core_selectors.audit_verification_last()
    with transaction.atomic():
        write_audit(action="compliance.audit.verify_requested", actor=request.user, data={})
        transaction.on_commit(audit_verify_task.delay)
    request.session[VERIFY_SESSION_KEY] = last.pk if last else 0
    messages.info(request, _("Verification of the audit chain started."))
    back = QueryDict(request.POST.get("next", "")).urlencode()  # the filters the page had, re-encoded
    return redirect(reverse("supervisor-audit") + ("?" + back if back else ""))


@require_GET
@supervisor_required
def audit_verify_status(request):
    last = core_selectors.audit_verification_last()
    return JsonResponse({"id": last.pk if last else 0, "ok": last.ok if last else None,
                         "events_checked": last.events_checked if last else 0})


# ---------------------------------------------------------------------------------------------
# Policies


@require_GET
@supervisor_required
def policy_list(request):
    versions = core_selectors.policy_versions_by_jurisdiction()
    now = timezone.now()
    in_force = {}
    for code in versions:
        try:
            in_force[code] = core_selectors.policy_row_in_force(code=code, at=now).pk
        except ValidationError:
            in_force[code] = None
    return render(request, "compliance/policy_list.html", {
        "versions": sorted(versions.items()), "in_force_ids": {pk for pk in in_force.values() if pk},
    })


def _rules_in_force(code: str) -> tuple[Policy | None, list[dict]]:
    try:
        row = core_selectors.policy_row_in_force(code=code, at=timezone.now())
    except ValidationError:
        return None, []
    return row, row.rules.get("rules", [])


def _diff_rows(diff: list[dict]) -> list[dict]:
    """Rule names and field labels for the diff table (the codes and keys stay beside them)."""
    return [{**d, "title": RULE_TITLES.get(d["code"], ""),
             "changes": [(RULE_FIELD_LABELS.get(key, key), key, old, new) for key, old, new in d["changes"]]}
            for d in diff]


@require_http_methods(["GET", "POST"])
@supervisor_required
def policy_draft(request, code: str):
    """A new draft from the latest version: its rules' values as a form (preview shows the diff
    against the version in force; save creates the draft), or, to add or remove rules, as JSON."""
    latest = Policy.objects.filter(code=code).order_by("-version").first()
    if latest is None:
        get_object_or_404(Policy, code=code)  # unknown jurisdiction: 404
    in_force, in_force_rules = _rules_in_force(code)
    start_rules = latest.rules.get("rules", [])
    initial = {"name": latest.name, "effective_from": timezone.localtime() + timedelta(days=7)}
    edit = PolicyRulesForm(prefix="edit", code=code, base_rules=start_rules, initial=initial)
    form = PolicyDraftForm(code=code, initial={
        **initial, "rules": json.dumps(start_rules, ensure_ascii=False, indent=1)})
    diff = None
    if request.method == "POST":
        if "rules" in request.POST:  # the JSON path
            form = PolicyDraftForm(request.POST, code=code)
            target, new_rules = form, (form.cleaned_data["rules"] if form.is_valid() else None)
        else:
            edit = PolicyRulesForm(request.POST, prefix="edit", code=code, base_rules=start_rules)
            target, new_rules = edit, (edit.rules() if edit.is_valid() else None)
        if new_rules is not None:
            diff = _diff_rows(selectors.policy_rules_diff(before=in_force_rules, after=new_rules))
            if target is form or request.POST.get("action") == "save":
                d = target.cleaned_data
                try:
                    row = core_services.policy_draft_create(
                        actor=request.user, code=code, data={"name": d["name"], "rules": new_rules},
                        effective_from=d["effective_from"],
                    )
                except ValidationError as exc:
                    target.add_error(None, exc)
                else:
                    messages.success(request, _("Draft %(code)s v%(version)s saved.") % {"code": code, "version": row.version})
                    return redirect("supervisor-policy", pk=row.pk)
    return render(request, "compliance/policy_draft.html", {
        "form": form, "edit": edit, "code": code, "latest": latest, "in_force": in_force, "diff": diff,
    })


@require_GET
@supervisor_required
def policy_detail(request, pk: int):
    policy = get_object_or_404(Policy, pk=pk)
    form = WhatIfForm(request.GET if "days" in request.GET else None, initial={"days": 30})
    result = None
    if form.is_bound and form.is_valid():
        result = services.policy_whatif_replay(policy=policy, days=form.cleaned_data["days"])
        for c in result.changed:  # rule names for the drill-down
            c["draft_titles"] = [(code, RULE_TITLES.get(code, "")) for code in c["draft"]]
            c["baseline_titles"] = [(code, RULE_TITLES.get(code, "")) for code in c["baseline"]]
    in_force, in_force_rules = _rules_in_force(policy.code)
    diff = None
    if in_force is not None and in_force.pk != policy.pk:
        diff = _diff_rows(selectors.policy_rules_diff(before=in_force_rules, after=policy.rules.get("rules", [])))
    return render(request, "compliance/policy_detail.html", {
        "policy": policy, "form": form, "result": result, "diff": diff, "in_force": in_force,
        "rules_json": json.dumps(policy.rules, ensure_ascii=False, indent=1),
    })


@require_POST
@supervisor_required
def policy_publish(request, pk: int):
    policy = get_object_or_404(Policy, pk=pk)
    try:
        core_services.policy_publish(actor=request.user, policy=policy)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, _("%(code)s v%(version)s published.") % {"code": policy.code, "version": policy.version})
    return redirect("supervisor-policy", pk=policy.pk)


# ---------------------------------------------------------------------------------------------
# Agents


@require_GET
@supervisor_required
def agent_list(request):
    return render(request, "compliance/agent_list.html", {
        "agents": selectors.agent_list(), "assignment_url": _assignment_url(),
    })


@require_http_methods(["GET", "POST"])
@supervisor_required
def agent_edit(request, pk: int):
    agent = get_object_or_404(User, pk=pk, role=User.Role.AGENT)
    if request.method == "POST":
        form = AgentSettingsForm(request.POST)
        if form.is_valid():
            try:
                services.agent_settings_update(
                    actor=request.user, agent=agent, lender_ids=[lender.pk for lender in form.cleaned_data["lenders"]],
                    jurisdictions=form.cleaned_data["jurisdictions"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("Settings of %(agent)s saved.") % {"agent": agent.get_username()})
                return redirect("supervisor-agents")
    else:
        form = AgentSettingsForm(initial={"lenders": list(agent.lenders.all()), "jurisdictions": agent.jurisdictions})
    return render(request, "compliance/agent_edit.html", {
        "agent": agent, "form": form, "assignment_url": _assignment_url(),
    })


# ---------------------------------------------------------------------------------------------
# Incident queue: contacts that happened and broke a rule (stored as breaches)


@require_GET
@supervisor_required
def incident_list(request):
    status = request.GET.get("status", "open")
    if status not in ("", *Incident.Status.values):
        status = "open"
    qs = core_selectors.incident_list(status=status)
    page = Paginator(qs, core_selectors.INCIDENT_PAGE_SIZE).get_page(request.GET.get("page"))
    counts = core_selectors.incident_counts()
    return render(request, "compliance/incident_list.html", {
        "page": page, "status": status, "query": f"status={status}",
        "statuses": [(value, label, counts.get(value, 0)) for value, label in Incident.Status.choices],
    })


@require_POST
@supervisor_required
def incident_review(request, pk: int):
    incident = get_object_or_404(Incident, pk=pk)
    try:
        core_services.incident_review(actor=request.user, incident=incident, status=request.POST.get("status", ""),
                                 resolution=request.POST.get("resolution", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Incident #%(id)s updated.") % {"id": incident.pk})
    return redirect(reverse("supervisor-incidents") + "?status=" + request.POST.get("back", "open"))
