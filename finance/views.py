"""Settlement pages (an agent's offer from the case page, the supervisors' approval queue) and remittance
statements (lender portal and supervisors). Thin: services and selectors do the work."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cases.models import Lender
from cases.selectors import account_list_for_user
from cases.views.workspace import workspace_view
from supervision.views import supervisor_required

from . import payment_files, selectors, services, statements
from .forms import PaymentFileForm, SettlementDecisionForm, SettlementOfferForm
from .models import Settlement


def _errors(exc: ValidationError) -> str:
    return " ".join(str(m) for m in exc.messages)


@require_POST
@workspace_view
def settlement_offer(request, pk: int):
    # Scoped like the case page: an account the user may not see is a 404.
    account = get_object_or_404(account_list_for_user(user=request.user), pk=pk)
    form = SettlementOfferForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The settlement offer is incomplete: %(errors)s") % {
            "errors": "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())})
        return redirect("case-detail", pk=account.pk)
    try:
        settlement = services.settlement_offer(actor=request.user, account=account, amount=form.cleaned_data["amount"],
                                               instalments=form.schedule())
    except ValidationError as exc:
        messages.error(request, _errors(exc))
        return redirect("case-detail", pk=account.pk)
    if settlement.needs_approval:
        messages.warning(request, _("The offer is below the lender's floor; it waits for a supervisor's approval."))
    else:
        messages.success(request, _("Settlement approved; its repayment plan is active."))
    return redirect("case-detail", pk=account.pk)


@require_GET
@supervisor_required
def settlement_queue(request):
    return render(request, "finance/settlements.html", {
        "pending": selectors.settlements_pending(), "recent": selectors.settlements_recent(),
        "form": SettlementDecisionForm(),
    })


@require_POST
@supervisor_required
def settlement_decide(request, pk: int):
    settlement = get_object_or_404(Settlement, pk=pk)
    form = SettlementDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose approve or decline."))
        return redirect("finance:settlements")
    decide = services.settlement_approve if form.cleaned_data["decision"] == "approve" else services.settlement_decline
    try:
        decide(actor=request.user, settlement=settlement, note=form.cleaned_data["note"])
    except PermissionError as exc:
        raise PermissionDenied from exc
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(request, _("Settlement %(id)s: %(decision)s.") % {
            "id": settlement.pk, "decision": dict(form.fields["decision"].choices)[form.cleaned_data["decision"]]})
    return redirect("finance:settlements")


# ---- remittance statements ---------------------------------------------------------------------------


def _statement_user(view):
    """Lender users (their lender's statements) and supervisors (all lenders)."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not (user.is_supervisor or (user.is_lender_user and user.lender_id)):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@_statement_user
def statement_list(request):
    user = request.user
    if user.is_lender_user:
        rows = statements.statements_for_lender(lender_id=user.lender_id)
    else:
        rows = statements.statements_all()
    year, month = statements.default_month()
    return render(request, "finance/statements.html", {
        "statements": rows, "supervisor": user.is_supervisor, "default_month": f"{year:04d}-{month:02d}",
        "lenders": Lender.objects.filter(status=Lender.Status.ACTIVE) if user.is_supervisor else [],
    })


@require_GET
@_statement_user
def statement_download(request, pk: int, fmt: str):
    st = statements.statement_for_user(user=request.user, pk=pk)
    if st is None:
        raise Http404
    content, content_type, name = statements.statement_file(statement=st, fmt=fmt)
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_POST
@supervisor_required
def statement_issue(request):
    """Supervisors: the monthly run for every lender (``month=YYYY-MM``) or one lender's on-demand statement."""
    try:
        if request.POST.get("lender"):
            lender = get_object_or_404(Lender, pk=int(request.POST["lender"]))
            issued = statements.statement_issue(actor=request.user, lender=lender)
        else:
            year, month = (int(x) for x in request.POST.get("month", "").split("-"))
            issued = statements.statements_issue_month(actor=request.user, year=year, month=month)
    except ValueError:
        messages.error(request, _("Give the month as YYYY-MM."))
    else:
        messages.success(request, _("%(n)s statement(s) issued.") % {"n": len(issued)})
    return redirect("finance:statements")


# ---- payment files ---------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@_statement_user
def payment_file_upload(request):
    """Lender users: a "the borrower paid us" file for their accounts. Supervisors: a bank / payment-provider
    statement, for one lender's accounts or any lender's. The result lists every line not recorded."""
    user = request.user
    lenders = None if user.is_lender_user else Lender.objects.order_by("name")
    form = PaymentFileForm(request.POST or None, request.FILES or None, lenders=lenders)
    result = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        lender = user.lender if user.is_lender_user else form.cleaned_data.get("lender")
        try:
            result = payment_files.payment_file_import(
                actor=user, content=upload.read(payment_files.MAX_BYTES + 1), name=upload.name, lender=lender,
                source="lender_file" if user.is_lender_user else "bank_file")
        except ValidationError as exc:
            form.add_error("file", _errors(exc))
    return render(request, "finance/payment_upload.html", {"form": form, "result": result,
                                                          "supervisor": not user.is_lender_user},
                  status=400 if request.method == "POST" and result is None else 200)
