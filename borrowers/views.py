"""Borrower page: link + second factor, then the person's accounts and self-service actions.

The borrower has no user account: a verified link puts the person's key in the session (apart from
any staff sign-in) for BORROWER_SESSION_SECONDS. Views are thin: selectors read, services write.
"""

from __future__ import annotations

import time
from functools import wraps
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from cases.selectors import mask_email, mask_phone
from cases.services import ContactRefused
from servicing.throttle import client_address

from . import selectors, services
from .forms import (
    CallbackForm,
    ComplaintForm,
    DisputeForm,
    FactorForm,
    PlanChoiceForm,
    PlanForm,
    PreferencesForm,
    PromiseForm,
)

SESSION_KEY = "borrower_page"


def borrower_session(view):
    @wraps(view)
    @never_cache
    def wrapper(request, *args, **kwargs):
        data = request.session.get(SESSION_KEY)
        if not data or data.get("until", 0) < time.time():
            request.session.pop(SESSION_KEY, None)
            return render(request, "borrowers/expired.html", status=403)
        request.person = data["person"]
        request.borrower_id = data["borrower_id"]
        return view(request, *args, **kwargs)

    return wrapper


def _errors(request, exc: ValidationError) -> None:
    for msg in exc.messages:
        messages.error(request, msg)


def _form_errors(request, form) -> None:
    for field, errs in form.errors.items():
        label = form.fields[field].label if field in form.fields else ""
        for e in errs:
            messages.error(request, f"{label}: {e}" if label else e)


@never_cache
def access(request, token: str):
    """The same page and the same answer for an unknown, expired or used link and a wrong factor."""
    form = FactorForm(request.POST or None)
    failed = False
    if request.method == "POST":
        row = None
        if form.is_valid():
            row = services.access_verify(raw_token=token, factor=form.cleaned_data["factor"],
                                         client=client_address(request))
        else:
            # Still counted: a malformed answer is a try like any other.
            services.access_verify(raw_token=token, factor="", client=client_address(request))
        if row is not None:
            request.session.cycle_key()  # a fresh session id once identity is proven
            request.session[SESSION_KEY] = {"person": row.borrower.person, "borrower_id": row.borrower_id,
                                            "until": time.time() + settings.BORROWER_SESSION_SECONDS}
            return redirect("borrowers:home")
        failed = True
        form = FactorForm()
    return render(request, "borrowers/access.html", {"form": form, "failed": failed})


def _zone(borrower) -> ZoneInfo:
    zones = borrower.zones
    return ZoneInfo(zones[0]) if zones else ZoneInfo(settings.TIME_ZONE)


@borrower_session
def home(request):
    accounts = selectors.person_overview(person=request.person)
    me = next((a.borrower for a in accounts if a.borrower_id == request.borrower_id), None)
    if me is None:
        from cases.models import Borrower

        me = Borrower.objects.get(pk=request.borrower_id)
    open_accounts = [a for a in accounts if a.is_open]
    for a in accounts:  # what the lender's terms let the borrower choose without waiting for an agent
        today = timezone.localtime(timezone.now(), _zone(a.borrower)).date()
        a.plan_choices = [] if a.active_plans else selectors.plan_options(account=a, today=today)
        a.parts = selectors.balance_parts(account=a)
    protections = selectors.contact_rules_plain(jurisdiction=me.jurisdiction)
    records = list(selectors.person_borrowers(person=request.person))
    ctx = {
        "me": me,
        "accounts": accounts,
        "protections": protections,
        "phones": [mask_phone(str(p)) for b in records for p in b.phones],
        "emails": [mask_email(str(e)) for b in records for e in b.emails],
        "zone": str(_zone(me)),
        "promise_form": PromiseForm(accounts=open_accounts, prefix="promise"),
        "plan_form": PlanForm(accounts=open_accounts, prefix="plan"),
        "dispute_form": DisputeForm(accounts=accounts, prefix="dispute"),
        "callback_form": CallbackForm(accounts=open_accounts, prefix="callback"),
        "complaint_form": ComplaintForm(accounts=accounts, prefix="complaint"),
        "education": selectors.education_pages(language=get_language() or settings.LANGUAGE_CODE),
        "prefs_form": PreferencesForm(prefix="prefs", initial={
            "sms_consent": me.sms_consent, "email_consent": me.email_consent,
            "after_hours_consent": me.after_hours_consent, **PreferencesForm.initial_for(me.contact_windows)}),
    }
    return render(request, "borrowers/home.html", ctx)


def _post(form_class, prefix: str, *, with_accounts: bool = True):
    """A POST view: bind the form (to the person's own accounts), run ``act``, report, back to the page."""

    def decorate(act):
        @require_POST
        @borrower_session
        @wraps(act)
        def view(request):
            kwargs = {"accounts": selectors.person_accounts(person=request.person)} if with_accounts else {}
            form = form_class(request.POST, request.FILES, prefix=prefix, **kwargs)
            if not form.is_valid():
                _form_errors(request, form)
            else:
                try:
                    messages.success(request, act(request, form))
                except ValidationError as exc:
                    _errors(request, exc)
                except ContactRefused as exc:
                    nxt = exc.decision.next_allowed_at
                    msg = _("That time is not allowed by the contact rules.")
                    if nxt:
                        zone = _zone(selectors.person_account_get(person=request.person,
                                                                  account_id=form.cleaned_data["account"]).borrower)
                        msg += " " + _("The earliest possible time is %(at)s.") % {
                            "at": timezone.localtime(nxt, zone).strftime("%Y-%m-%d %H:%M")}
                    messages.error(request, msg)
            return redirect("borrowers:home")

        return view

    return decorate


@_post(PromiseForm, "promise")
def promise(request, form):
    d = form.cleaned_data
    services.borrower_promise_make(person=request.person, account_id=d["account"], amount=d["amount"],
                                   due_date=d["due_date"])
    return _("Thank you: your promise to pay is recorded.")


@_post(PlanForm, "plan")
def plan(request, form):
    services.borrower_plan_propose(person=request.person, account_id=form.cleaned_data["account"],
                                   instalments=form.instalments(), note=form.cleaned_data["note"])
    return _("Your plan proposal was sent. An agent will accept it or make a counter-offer.")


@_post(PlanChoiceForm, "choose")
def plan_choose(request, form):
    account = selectors.person_account_get(person=request.person, account_id=form.cleaned_data["account"])
    plan = services.borrower_plan_choose(person=request.person, account_id=account.pk,
                                         option=form.cleaned_data["option"],
                                         today=timezone.localtime(timezone.now(), _zone(account.borrower)).date())
    if plan.status != "active":  # the lender's terms changed since the page was shown
        return _("Your plan was sent for approval. We will tell you the answer.")
    return _("Your repayment plan is agreed. The first payment is due on %(date)s.") % {
        "date": plan.instalments.order_by("seq").first().due_date.isoformat()}


@_post(DisputeForm, "dispute")
def dispute(request, form):
    d = form.cleaned_data
    files = d.get("evidence") or []
    services.borrower_dispute_raise(person=request.person, account_id=d["account"], reason=d["reason"],
                                    text=d["text"], files=files)
    return _("Your dispute is recorded. Collection contact about this debt stops while it is reviewed.")


@_post(CallbackForm, "callback")
def callback(request, form):
    d = form.cleaned_data
    account = selectors.person_account_get(person=request.person, account_id=d["account"])
    local = d["due_at"].replace(tzinfo=None).replace(tzinfo=_zone(account.borrower))
    services.borrower_callback_request(person=request.person, account_id=account.pk, due_at=local)
    return _("Your call back is booked.")


@_post(ComplaintForm, "complaint")
def complaint(request, form):
    c = services.borrower_complaint_raise(person=request.person, account_id=form.cleaned_data["account"],
                                          text=form.cleaned_data["text"])
    return _("Your complaint is recorded. We will answer by %(date)s.") % {"date": c.deadline.isoformat()}


@_post(PreferencesForm, "prefs", with_accounts=False)
def preferences(request, form):
    values = {k: form.cleaned_data[k] for k in ("sms_consent", "email_consent")}
    me_jurisdiction = selectors.person_borrowers(person=request.person).values_list("jurisdiction", flat=True).first()
    if selectors.contact_rules_plain(jurisdiction=me_jurisdiction or "CN").after_hours_waivable:
        values["after_hours_consent"] = form.cleaned_data["after_hours_consent"]
    services.borrower_preferences_set(person=request.person, values=values, windows=form.contact_windows())
    return _("Your contact preferences are saved.")


@require_POST
@borrower_session
def opt_out(request):
    channel = request.POST.get("channel", "")
    try:
        services.borrower_opt_out_channel(person=request.person, channel=channel)
    except ValidationError as exc:
        _errors(request, exc)
    else:
        messages.success(request, _("Done: we will send no more text messages.") if channel == "sms"
                         else _("Done: we will send no more emails."))
    return redirect("borrowers:home")


@require_POST
def sign_out(request):
    request.session.pop(SESSION_KEY, None)
    return render(request, "borrowers/expired.html", {"signed_out": True})
