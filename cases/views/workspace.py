"""The agent workspace: work queue, case page and the actions on a case. Thin: services decide and write."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from cases import selectors, services
from cases.forms import (
    CALL_BAR_OUTCOMES,
    AssignForm,
    CallbackForm,
    ContactTimesForm,
    InstalmentFormSet,
    NoteForm,
    OutreachCompleteForm,
    OutreachForm,
    OutreachStartForm,
    PaymentForm,
    PlanForm,
    PromiseForm,
    QueueFilterForm,
    StatusForm,
)
from cases.gate import contact_check
from cases.models import Borrower, ContactAttempt, Lender, OverdueAccount, RepaymentPlan, User
from compliance.audit_labels import audit_action_label
from reminders.selectors import notification_list_for_user
from scoring.selectors import score_summary
from servicing import clock

from .presenters import agent_zone, fmt_in, page_query, present_decision


def workspace_view(view):
    """Signed-in agents and supervisors only; times are shown and read in the agent's own time zone."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not (user.is_agent or user.is_supervisor):
            raise PermissionDenied
        with timezone.override(agent_zone(user)):
            return view(request, *args, **kwargs)

    return wrapper


def _account(request, pk: int) -> OverdueAccount:
    # Scoped: another agent's or another lender's account is a 404, never a 403 that confirms it exists.
    return get_object_or_404(selectors.account_list_for_user(user=request.user).select_related("locked_by"), pk=pk)


def _add_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errs in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errs)
    else:
        form.add_error(None, exc)


# ---- queue ---------------------------------------------------------------------------------


@require_GET
@workspace_view
def queue(request):
    user = request.user
    now = clock.now()
    if user.is_supervisor:
        lenders = Lender.objects.filter(status=Lender.Status.ACTIVE)
    else:
        lenders = Lender.objects.filter(pk__in=selectors.account_list_for_user(user=user).values("lender_id"))
    form = QueueFilterForm(request.GET or None, lenders=lenders)
    filters = form.cleaned_data if form.is_valid() else {}
    qs = selectors.account_queue(
        user=user, bucket=filters.get("bucket", ""), status=filters.get("status", ""),
        lender_id=filters["lender"].pk if filters.get("lender") else None, search=filters.get("q", ""), now=now,
    )
    per = filters.get("per") or 25
    if filters.get("callable"):
        # Only what may be called now: decided in bulk over the top of the queue, then paginated.
        page = Paginator(selectors.queue_callable_rows(user=user, qs=qs, now=now), per).get_page(request.GET.get("page"))
        rows = list(page.object_list)
        selectors.queue_columns_attach(accounts=[row.account for row in rows], now=now)
    else:
        page = Paginator(qs.values_list("pk", flat=True), per).get_page(request.GET.get("page"))
        accounts = selectors.queue_page_load(user=user, ids=list(page.object_list), now=now)
        rows = selectors.queue_rows(user=user, accounts=accounts, at=now)
    tz = agent_zone(user)
    outcomes = dict(ContactAttempt.Outcome.choices)
    for row in rows:
        row.last_outcome = outcomes.get(row.account.last_outcome, "")
        row.status = present_decision(row.decision, borrower=row.account.borrower, user=user, channel="call")
        row.phone = selectors.mask_phone(row.account.borrower.phones[0]) if row.account.borrower.phones else ""
        row.lock_until = fmt_in(row.account.locked_until, tz) if row.locked_by_other else ""
        row.score = score_summary(account=row.account)  # loaded with the page: no query
    # Accounts that may not be called now are listed apart, never offered as work (issue 15).
    workable = [row for row in rows if row.workable]
    apart = [row for row in rows if not row.workable]
    # Unread reminders for the agent (callbacks due, promises due today), shown above the queue.
    notifications = list(notification_list_for_user(user=user, unread_only=True)[:5])
    return render(request, "cases/queue.html", {
        "form": form, "page": page, "rows": rows, "workable": workable, "apart": apart,
        "sections": [{"apart": False, "rows": workable}, {"apart": True, "rows": apart}], "query": page_query(request), "agent_zone": str(tz),
        "notifications": notifications,
    })


# ---- case page -----------------------------------------------------------------------------


def _case_context(request, account: OverdueAccount, *, forms: dict | None = None, active: str = "",
                  refusal: dict | None = None, reveal: bool = False, lock_ok: bool = True) -> dict:
    user = request.user
    now = clock.now()
    borrower = account.borrower
    status = selectors.account_contact_status(account=account, at=now)
    channels = dict(ContactAttempt.Channel.choices)
    contact = [
        {**present_decision(d, borrower=borrower, user=user, channel=ch,
                            needs_collector=_only_collector_missing(account, d, channel=ch, at=now)),
         "label": channels[ch]}
        for ch, d in status.items()
    ]
    forms = forms or {}
    # The call bar: outcome buttons per channel, with the channel's status now (no extra query).
    bar_form = forms.get("bar")
    bar_data = bar_form.data if bar_form is not None else {}
    status_by_channel = {d["channel"]: d for d in contact}
    call_bar = {
        "channel": bar_data.get("channel") or "call",
        "outcome": bar_data.get("outcome", ""),
        "notes": bar_data.get("notes", ""),
        "errors": [f"{bar_form.fields[k].label}: {e}" if k in bar_form.fields else e
                   for k, errs in bar_form.errors.items() for e in errs] if bar_form is not None else [],
        "channels": [
            {"value": ch, "label": channels[ch], "status": status_by_channel.get(ch),
             "outcomes": [{"value": v, "label": label, "key": i} for i, (v, label) in enumerate(outs, start=1)]}
            for ch, outs in CALL_BAR_OUTCOMES.items()
        ],
    }
    defaults = {
        "outreach": lambda: OutreachForm(user=user),
        "start": lambda: OutreachStartForm(user=user, account=account, prefix="start"),
        "promise": lambda: PromiseForm(account=account),
        "plan": lambda: PlanForm(prefix="plan"),
        "instalments": lambda: InstalmentFormSet(prefix="inst"),
        # Prefixed / own ids: several forms on this page have an "amount" or "channel" field (issue 12).
        "payment": lambda: PaymentForm(prefix=PaymentForm.PREFIX,
                                       initial={"paid_at": timezone.localtime(now).replace(second=0, microsecond=0)}),
        "callback": lambda: CallbackForm(auto_id=CallbackForm.AUTO_ID),
        "note": lambda: NoteForm(),
        "status": lambda: StatusForm(),
        "times": lambda: ContactTimesForm(prefix="times", initial=ContactTimesForm.initial_for(borrower.contact_windows)),
    }
    for key, make in defaults.items():
        forms.setdefault(key, make())
    if user.is_supervisor:
        forms.setdefault("assign", AssignForm(initial={"agent": account.assigned_agent_id}))
    locked_by_other = bool(
        account.locked_by_id and account.locked_by_id != user.pk and account.locked_until and account.locked_until > now
    )
    timeline = selectors.account_timeline(account=account)
    for entry in timeline:
        if entry.kind == "audit":
            entry.label = audit_action_label(entry.obj.action)
    # Outreach this agent started here and has not completed: the full number is shown only now.
    started = list(ContactAttempt.objects.filter(account=account, agent=user, state=ContactAttempt.State.STARTED)
                   .select_related("borrower").order_by("occurred_at"))
    for attempt in started:
        attempt.target = selectors.contact_attempt_target(attempt=attempt, actor=user)
        attempt.form = OutreachCompleteForm(initial={"attempt": attempt.pk}, prefix=f"a{attempt.pk}")
    # Agents get a number only by starting an outreach the gate allows; supervisors may reveal it (audited).
    show_contact = reveal and user.is_supervisor
    return {
        "account": account,
        "borrower": borrower,
        "phones": list(borrower.phones) if show_contact else [selectors.mask_phone(p) for p in borrower.phones],
        "emails": list(borrower.emails) if show_contact else [selectors.mask_email(e) for e in borrower.emails],
        "started": started,
        "national_id": borrower.national_id if reveal else selectors.mask_national_id(borrower.national_id),
        "revealed": reveal,
        "holds": [Borrower._meta.get_field(h).verbose_name for h in sorted(borrower.holds)],
        "contact": contact,
        "borrower_now": [(z, fmt_in(now, z)) for z in borrower.zones],
        "agent_now": fmt_in(now, agent_zone(user)),
        "agent_zone": str(agent_zone(user)),
        "forms": forms,
        "call_bar": call_bar,
        "active": active,
        "refusal": refusal,
        "timeline": timeline,
        "locked_by_other": locked_by_other or not lock_ok,
        "lock_until": fmt_in(account.locked_until, agent_zone(user)) if account.locked_until else "",
        "own_lock": account.locked_by_id == user.pk and account.locked_until and account.locked_until > now,
        "open_promises": account.promises.filter(status="open").order_by("due_date"),
        "active_plan": account.plans.filter(status="active").prefetch_related("instalments").order_by("-created_at").first(),
        "callbacks": account.callbacks.filter(status="scheduled").order_by("due_at"),
        "score": score_summary(account=account),  # shown by templates/scoring/_score.html
    }


def _render_case(request, account, *, status: int = 200, **kwargs):
    return render(request, "cases/case.html", _case_context(request, account, **kwargs), status=status)


@require_GET
@workspace_view
def case_detail(request, pk: int):
    account = _account(request, pk)
    lock_ok = True
    if request.user.is_agent:
        # Opening a case to work it takes (or extends) the soft lock; supervisors just look.
        lock_ok, account = services.account_lock_acquire(actor=request.user, account=account)
    return _render_case(request, account, lock_ok=lock_ok)


def _locked_redirect(request, account: OverdueAccount):
    """Writes need the soft lock: refuse while another agent is working the account."""
    ok, fresh = services.account_lock_acquire(actor=request.user, account=account)
    if ok:
        return None
    messages.error(request, _("%(user)s is working this account until %(until)s; try again later.") % {
        "user": fresh.locked_by.get_username() if fresh.locked_by else "?",
        "until": fmt_in(fresh.locked_until, agent_zone(request.user)),
    })
    return redirect("case-detail", pk=account.pk)


def _done(request, account, message: str, *, url: str | None = None):
    messages.success(request, message)
    return redirect(url or reverse("case-detail", args=[account.pk]) + "#timeline")


def _next_account_url(request, account: OverdueAccount) -> str:
    """"Save & next": the next account of the agent's queue that may be called now, else the queue.

    The agent leaves this account, so its soft lock goes too: otherwise a colleague would wait out the TTL."""
    services.account_lock_release(actor=request.user, account=account)
    pk = selectors.queue_next_workable(user=request.user, after_id=account.pk, now=clock.now())
    if pk is None:
        messages.info(request, _("No other account in your queue may be called now."))
        return reverse("queue")
    return reverse("case-detail", args=[pk])


@require_POST
@workspace_view
def case_outreach(request, pk: int):
    # The call bar posts the same form (bar=1): its errors and refusal are shown next to it.
    bar = request.POST.get("bar") == "1"
    then_next = bar and request.POST.get("then") == "next"
    return _simple_action(
        request, pk, key="bar" if bar else "outreach", form_class=OutreachForm,
        form_kwargs=lambda account: {"user": request.user},
        then=(lambda account: _next_account_url(request, account)) if then_next else None,
        save=lambda account, cd: _recorded(request, services.contact_attempt_record(
            account=account, actor=request.user, channel=cd["channel"], outcome=cd["outcome"],
            direction=cd["direction"], party=cd["party"], occurred_at=cd["occurred_at"],  # None: the service's now
            notes=cd["notes"], source=ContactAttempt.Source.WEB, second_collector=cd["second_collector"],
        )),
        done=_("Outreach recorded."),
    )


def _recorded(request, attempt: ContactAttempt) -> ContactAttempt:
    """A contact reported after the fact that broke a rule is kept: say so, plainly."""
    if attempt.is_breach:
        messages.warning(request, _(
            "Recorded as it happened, but it broke %(rules)s: it is flagged as a breach and a supervisor will"
            " review it.") % {"rules": ", ".join(v["code"] for v in attempt.breach)})
    return attempt


@require_POST
@workspace_view
def case_outreach_start(request, pk: int):
    """Start an outreach: the gate first; allowed, the number is shown with the outcome form."""
    return _simple_action(
        request, pk, key="start", form_class=OutreachStartForm,
        form_kwargs=lambda account: {"user": request.user, "account": account, "prefix": "start"},
        save=lambda account, cd: services.contact_attempt_start(
            account=account, actor=request.user, channel=cd["channel"], party=cd["party"],
            accounts=list(cd["accounts"]), second_collector=cd["second_collector"], source=ContactAttempt.Source.WEB,
        ),
        done=_("Outreach started: the number is shown below. Record the outcome when you are done."),
    )


@require_POST
@workspace_view
def case_outreach_complete(request, pk: int, attempt_id: int):
    account = _account(request, pk)
    attempt = selectors.contact_attempt_for_user(user=request.user, attempt_id=attempt_id)
    if attempt.account_id != account.pk:
        raise Http404
    form = OutreachCompleteForm(request.POST, prefix=f"a{attempt.pk}")
    if form.is_valid():
        try:
            services.contact_attempt_complete(attempt=attempt, actor=request.user, outcome=form.cleaned_data["outcome"],
                                              notes=form.cleaned_data["notes"])
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("case-detail", pk=account.pk)
        return _done(request, account, _("Outcome recorded."))
    messages.error(request, _("Choose the outcome of the outreach."))
    return redirect("case-detail", pk=account.pk)


@require_GET
@workspace_view
def case_check(request, pk: int):
    """Live compliance check while the agent fills in the outreach form: the same check as the API, recording nothing."""
    account = _account(request, pk)
    channel = request.GET.get("channel", "call")
    direction = request.GET.get("direction", "outbound")
    party = request.GET.get("party", "borrower")
    if (channel not in ContactAttempt.Channel.values or direction not in ContactAttempt.Direction.values
            or party not in ContactAttempt.Party.values):
        return HttpResponseBadRequest(_("Unknown channel, direction or party."))
    at = clock.now()
    if request.GET.get("at"):
        # Only the time field is read here (the whole form would also demand an outcome), in the
        # agent's time zone like the form itself.
        try:
            at = OutreachForm.base_fields["occurred_at"].clean(request.GET["at"])
        except ValidationError:
            at = None
        if at is None:
            return HttpResponseBadRequest(_("Enter a valid date and time."))
    collectors = 2 if request.GET.get("second_collector") else 1  # who it is is checked when recording
    decision = contact_check(account=account, channel=channel, at=at, direction=direction, party=party,
                             collectors=collectors)
    shown = present_decision(decision, borrower=account.borrower, user=request.user, channel=channel,
                             needs_collector=_only_collector_missing(account, decision, channel=channel, at=at,
                                                                     direction=direction, party=party))
    shown["label"] = dict(ContactAttempt.Channel.choices)[channel]
    return render(request, "cases/_decision.html", {"d": shown, "live": True})


def _only_collector_missing(account, decision, *, channel: str, at, direction: str = "outbound",
                            party: str = "borrower") -> bool:
    """A refused field visit that a second collector alone would make lawful (say so, not "no time")."""
    if decision is None or decision.allowed or channel != ContactAttempt.Channel.VISIT:
        return False
    return contact_check(account=account, channel=channel, at=at, direction=direction, party=party,
                         collectors=2).allowed


def _simple_action(request, pk: int, *, key: str, form_class, save, done: str, form_kwargs=None, then=None):
    """The shared shape of a case write: lock check, form, service call, errors back on the form;
    a compliance refusal (outreach, callback) is shown with its rules and next lawful time (409)."""
    account = _account(request, pk)
    if resp := _locked_redirect(request, account):
        return resp
    form = form_class(request.POST, **(form_kwargs(account) if form_kwargs else {}))
    if form.is_valid():
        try:
            save(account, form.cleaned_data)
        except services.ContactRefused as refused:
            channel = form.cleaned_data["channel"]
            decision = present_decision(
                refused.decision, borrower=account.borrower, user=request.user, channel=channel,
                needs_collector=not form.cleaned_data.get("second_collector") and _only_collector_missing(
                    account, refused.decision, channel=channel, at=clock.now(),
                    party=form.cleaned_data.get("party", "borrower")))
            return _render_case(request, account, forms={key: form}, active=key, refusal=decision, status=409)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            return _done(request, account, done, url=then(account) if then else None)
    return _render_case(request, account, forms={key: form}, active=key, status=400)


@require_POST
@workspace_view
def case_promise(request, pk: int):
    return _simple_action(
        request, pk, key="promise", form_class=PromiseForm, form_kwargs=lambda account: {"account": account},
        save=lambda account, cd: services.promise_create(actor=request.user, account=account, **cd),
        done=_("Promise to pay recorded."),
    )


@require_POST
@workspace_view
def case_plan(request, pk: int):
    account = _account(request, pk)
    if resp := _locked_redirect(request, account):
        return resp
    form = PlanForm(request.POST, prefix="plan")
    formset = InstalmentFormSet(request.POST, prefix="inst")
    if form.is_valid() and formset.is_valid():
        rows = sorted(
            (f.cleaned_data["due_date"], f.cleaned_data["amount"]) for f in formset.forms if f.cleaned_data
        )
        try:
            plan = services.repayment_plan_create(
                actor=request.user, account=account, total_amount=form.cleaned_data["total_amount"], instalments=rows
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            if plan.status == RepaymentPlan.Status.PENDING:  # a settlement outside the lender's terms
                messages.warning(request, _("Repayment plan recorded: it is below the lender's settlement terms and "
                                            "waits for a supervisor's approval. The current arrangement stays in "
                                            "force until then."))
                return redirect("case-detail", pk=account.pk)
            return _done(request, account, _("Repayment plan recorded."))
    return _render_case(request, account, forms={"plan": form, "instalments": formset}, active="plan", status=400)


@require_POST
@workspace_view
def case_payment(request, pk: int):
    return _simple_action(
        request, pk, key="payment", form_class=PaymentForm, form_kwargs=lambda account: {"prefix": PaymentForm.PREFIX},
        save=lambda account, cd: services.payment_record(actor=request.user, account=account, **cd),
        done=_("Payment recorded."),
    )


@require_POST
@workspace_view
def case_callback(request, pk: int):
    return _simple_action(
        request, pk, key="callback", form_class=CallbackForm, form_kwargs=lambda account: {"auto_id": CallbackForm.AUTO_ID},
        save=lambda account, cd: services.callback_schedule(actor=request.user, account=account, due_at=cd["due_at"],
                                                            channel=cd["channel"], note=cd["note"]),
        done=_("Callback scheduled."),
    )


@require_POST
@workspace_view
def case_note(request, pk: int):
    return _simple_action(
        request, pk, key="note", form_class=NoteForm,
        save=lambda account, cd: services.note_add(actor=request.user, account=account, body=cd["body"]),
        done=_("Note added."),
    )


@require_POST
@workspace_view
def case_contact_times(request, pk: int):
    """The borrower told the agent when it suits them (or that any time does): for the whole person."""
    account = _account(request, pk)
    if resp := _locked_redirect(request, account):
        return resp
    form = ContactTimesForm(request.POST, prefix="times")
    if not form.is_valid():
        return _render_case(request, account, forms={"times": form}, active="times", status=400)
    services.contact_times_set(borrower=account.borrower, windows=form.contact_windows(), actor=request.user)
    return _done(request, account, _("The times that suit the borrower are saved."))


@require_POST
@workspace_view
def case_status(request, pk: int):
    return _simple_action(
        request, pk, key="status", form_class=StatusForm,
        save=lambda account, cd: services.account_status_change(actor=request.user, account=account, **cd),
        done=_("Status changed."),
    )


@require_POST
@workspace_view
def case_reveal(request, pk: int):
    """Show unmasked contact data; every reveal is audited (cases.pii.viewed)."""
    account = _account(request, pk)
    # Agents reach a number or address only by starting an outreach the gate allows (then it is shown
    # with the outcome form); supervisors may see everything.
    contact = request.user.is_supervisor
    services.borrower_pii_reveal(actor=request.user, account=account,
                                 fields=[*(["phones", "emails"] if contact else []), "national_id", "address"])
    borrower = account.borrower
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({
            "phones": borrower.phones if contact else [selectors.mask_phone(p) for p in borrower.phones],
            "emails": borrower.emails if contact else [selectors.mask_email(e) for e in borrower.emails],
            "national_id": borrower.national_id, "address": borrower.address})
    return _render_case(request, account, reveal=True)


@require_POST
@workspace_view
def case_release(request, pk: int):
    account = _account(request, pk)
    if services.account_lock_release(actor=request.user, account=account):
        messages.success(request, _("Account %(ref)s released.") % {"ref": account.external_ref})
    return redirect("queue")


@require_POST
@workspace_view
def case_assign(request, pk: int):
    """Supervisors: (re)assign one account from its case page."""
    if not request.user.is_supervisor:
        raise PermissionDenied
    account = _account(request, pk)
    form = AssignForm(request.POST)
    if form.is_valid():
        try:
            services.account_assign_bulk(actor=request.user, account_ids=[account.pk], agent=form.cleaned_data["agent"])
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            return _done(request, account, _("Assignment saved."))
    return _render_case(request, account, forms={"assign": form}, active="assign", status=400)


def agents_for_assignment():
    return User.objects.filter(role=User.Role.AGENT, is_active=True).order_by("username")
