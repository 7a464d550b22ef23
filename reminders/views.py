"""Supervisor reminder console and the agent's notifications (thin: selectors and services do the work)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cases.selectors import mask_email, mask_phone
from supervision.views import supervisor_required

from . import selectors, services
from .forms import ReminderFilterForm


@supervisor_required
def reminder_list(request):
    form = ReminderFilterForm(request.GET or None)
    filters = form.filters() if request.GET else {}
    qs = selectors.reminder_list_for_user(user=request.user, filters=filters)
    # Counts per state ignore the state filter so the summary shows the whole picture for the other filters.
    counts = selectors.reminder_state_counts(
        qs=selectors.reminder_list_for_user(user=request.user, filters={**filters, "state": ""})
    )
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    for r in page.object_list:
        borrower = r.account.borrower
        if r.channel == "sms":
            r.to_masked = mask_phone(borrower.phones[0]) if borrower.phones else ""
        elif r.channel == "email":
            email = str(borrower.emails[0]) if borrower.emails else ""
            r.to_masked = mask_email(email) if "@" in email else ""
        else:
            r.to_masked = r.recipient.get_username() if r.recipient else ""
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "reminders/list.html", {
        "form": form, "page": page, "counts": counts, "query": query.urlencode(),
    })


def _back(request):
    nxt = request.POST.get("next", "")
    if nxt and url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(nxt)
    return redirect("reminders:list")


def _scoped_reminder(request, pk: int):
    return get_object_or_404(selectors.reminder_list_for_user(user=request.user), pk=pk)


def _act(request, pk: int, action, success: str):
    """Run a supervisor action on a reminder in the user's scope, report the outcome, go back."""
    try:
        action(actor=request.user, reminder=_scoped_reminder(request, pk))
        messages.success(request, success)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return _back(request)


@require_POST
@supervisor_required
def reminder_requeue(request, pk: int):
    return _act(request, pk, services.reminder_requeue,
                _("The reminder will be sent again (after the compliance check)."))


@require_POST
@supervisor_required
def reminder_cancel(request, pk: int):
    return _act(request, pk, services.reminder_cancel, _("The reminder was cancelled."))


@login_required
def notification_list(request):
    items = selectors.notification_list_for_user(user=request.user)
    page = Paginator(items, 50).get_page(request.GET.get("page"))
    return render(request, "reminders/notifications.html", {
        "page": page, "unread": selectors.notification_unread_count(user=request.user),
    })


@login_required
@require_POST
def notification_read(request, pk: int):
    if not services.notification_mark_read(user=request.user, notification_id=pk):
        get_object_or_404(selectors.notification_list_for_user(user=request.user), pk=pk)  # 404 if not theirs
    return redirect("reminders:notifications")
