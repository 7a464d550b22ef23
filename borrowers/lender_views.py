"""Lender portal: disputes on the lender's accounts waiting for verification, and their resolution."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cases.views.portal import lender_view

from . import services
from .forms import ResolveForm
from .models import Dispute


def _disputes(user):
    return Dispute.objects.filter(account__lender_id=user.lender_id).select_related("account").prefetch_related(
        "evidence")


@lender_view
def lender_disputes(request):
    return render(request, "borrowers/lender_disputes.html", {
        "disputes": _disputes(request.user).order_by("status", "deadline")[:500], "form": ResolveForm(),
    })


@require_POST
@lender_view
def lender_dispute_resolve(request, pk: int):
    dispute = get_object_or_404(_disputes(request.user), pk=pk)  # another lender's dispute: 404
    form = ResolveForm(request.POST)
    if not form.is_valid():
        for errs in form.errors.values():
            for e in errs:
                messages.error(request, e)
    else:
        try:
            services.dispute_resolve(actor=request.user, dispute=dispute, outcome=form.cleaned_data["outcome"],
                                     note=form.cleaned_data["note"])
            messages.success(request, _("Dispute resolved."))
        except ValidationError as exc:
            for msg in exc.messages:
                messages.error(request, msg)
    return redirect("borrowers:lender-disputes")
