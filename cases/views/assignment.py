"""Supervisors assign and reassign accounts, one or many at a time, from a filtered list."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from cases import selectors, services
from cases.forms import AssignForm, AssignmentFilterForm
from cases.models import Lender, OverdueAccount

from .presenters import page_query
from .workspace import agents_for_assignment


@login_required
def assignment(request):
    user = request.user
    if not user.is_supervisor:
        raise PermissionDenied
    agents = agents_for_assignment()
    if request.method == "POST":
        form = AssignForm(request.POST, agents=agents)
        ids = [int(i) for i in request.POST.getlist("account") if i.isdigit()]
        # Only accounts the supervisor can see (all of them today; scoped all the same).
        ids = list(selectors.account_list_for_user(user=user).filter(pk__in=ids).values_list("pk", flat=True))
        if form.is_valid():
            try:
                n = services.account_assign_bulk(actor=user, account_ids=ids, agent=form.cleaned_data["agent"])
            except ValidationError as exc:
                for msg in exc.messages:
                    messages.error(request, msg)
            else:
                agent = form.cleaned_data["agent"]
                messages.success(request, ngettext(
                    "%(n)d account assigned to %(agent)s.", "%(n)d accounts assigned to %(agent)s.", n
                ) % {"n": n, "agent": agent.get_username() if agent else _("nobody")})
        else:
            messages.error(request, _("Choose a valid agent."))
        return redirect(request.get_full_path())

    filt = AssignmentFilterForm(request.GET or None, agents=agents, lenders=Lender.objects.filter(status="active"))
    cd = filt.cleaned_data if filt.is_valid() else {}
    qs = selectors.account_list_for_user(user=user).filter(status__in=OverdueAccount.OPEN_STATUSES)
    if cd.get("bucket"):
        qs = qs.filter(bucket=cd["bucket"])
    if cd.get("status"):
        qs = qs.filter(status=cd["status"])
    if cd.get("lender"):
        qs = qs.filter(lender=cd["lender"])
    agent = cd.get("agent", "")
    if agent == "none":
        qs = qs.filter(assigned_agent__isnull=True)
    elif agent.isdigit():
        qs = qs.filter(assigned_agent_id=int(agent))
    q = (cd.get("q") or "").strip()
    if q:
        qs = qs.filter(Q(borrower__name__icontains=q) | Q(external_ref__icontains=q))
    qs = qs.order_by("-days_past_due", "-balance", "id")
    page = Paginator(qs, cd.get("per") or 25).get_page(request.GET.get("page"))
    return render(request, "cases/assignment.html", {
        "filter": filt, "page": page, "assign_form": AssignForm(agents=agents), "query": page_query(request),
        "now": timezone.now(),
    })
