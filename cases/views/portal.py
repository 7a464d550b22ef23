"""Lender portal (upload, progress, batch report, accounts, results export, column mapping) and lender
registration / approval. Thin: forms parse, services write, selectors read."""

from __future__ import annotations

from functools import wraps
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from cases.importers import lenders, selectors, services
from cases.importers import recall as recalls
from cases.importers.columns import COLUMNS, RECALL_COLUMNS
from cases.importers.forms import AccountSearchForm, RecallForm, RegisterForm, UploadForm, mapping_form_class
from cases.models import ContactAttempt, Lender, PlacementBatch
from cases.selectors import mask_national_id, mask_phone
from compliance.audit import audit_checkpoint_export
from servicing.throttle import LENDER_SIGNUPS, client_address

from .presenters import page_query


def lender_view(view):
    """Signed-in users of a lender only; everything they see is their own lender's."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_lender_user or request.user.lender_id is None:
            raise PermissionDenied(_("The lender portal is for lender users."))
        return view(request, *args, **kwargs)

    return wrapper


def supervisor_view(view):
    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_supervisor:
            raise PermissionDenied(_("Supervisors and administrators only."))
        return view(request, *args, **kwargs)

    return wrapper


def _form_errors(request, exc: ValidationError) -> None:
    for msg in exc.messages:
        messages.error(request, msg)


@lender_view
def portal_home(request):
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch = services.placement_batch_create(
                actor=request.user, file=form.cleaned_data["file"], kind=form.cleaned_data["kind"],
                mode=form.cleaned_data["mode"], encoding=form.cleaned_data["encoding"] or "",
                language=translation.get_language(),
            )
        except ValidationError as exc:
            _form_errors(request, exc)
        else:
            # No flash message: the batch page says what state the file is in (processed in-process
            # or by a worker), so a finished batch never reads "being processed".
            return redirect("portal-batch", pk=batch.pk)
    batches = list(selectors.placement_batches_for_user(user=request.user)[:20])
    for b in batches:
        b.display, b.label, b.tone = selectors.batch_outcome(batch=b)
    return render(request, "portal/home.html", {
        "form": form, "batches": batches, "lender": request.user.lender, "recall_form": RecallForm(),
    })


def _batch(request, pk: int) -> PlacementBatch:
    return get_object_or_404(selectors.placement_batches_for_user(user=request.user), pk=pk)


@lender_view
@require_GET
def portal_batch(request, pk: int):
    batch = _batch(request, pk)
    # An identical re-upload applied nothing: show the errors of the batch it repeats.
    repeats = selectors.batch_repeats(batch=batch)
    source = repeats or batch
    errors = Paginator(selectors.batch_row_errors(batch=source), 200).get_page(request.GET.get("page"))
    return render(request, "portal/batch.html", {
        "batch": batch, "errors": errors, "progress": selectors.batch_progress(batch=batch),
        "repeats": repeats, "error_source": source,
    })


@lender_view
@require_GET
def portal_batch_errors(request, pk: int):
    """The failing rows as a CSV to fix and upload again (original values + the reasons)."""
    batch = _batch(request, pk)
    source = selectors.batch_repeats(batch=batch) or batch
    response = StreamingHttpResponse(selectors.batch_error_file(batch=source), content_type="text/csv; charset=utf-8")
    stem = "".join(c for c in source.original_name.rsplit(".", 1)[0] if c.isalnum() or c in "-_")[:60] or "file"
    response["Content-Disposition"] = f'attachment; filename="errors-{source.pk}-{stem}.csv"'
    return response


@lender_view
@require_GET
def portal_template(request, fmt: str, lang: str):
    """A blank placement file: the columns as canonical keys (``en``) or Chinese names (``zh``)."""
    if fmt not in ("csv", "xlsx") or lang not in ("en", "zh"):
        raise Http404
    if fmt == "csv":
        response = HttpResponse(selectors.template_csv(language=lang), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(selectors.template_xlsx(language=lang),
                                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Content-Disposition"] = f'attachment; filename="placement-template-{lang}.{fmt}"'
    return response


FORMAT_DOC = Path(__file__).resolve().parents[2] / "docs" / "placement-format.md"


@require_GET
def portal_format(request):
    """The placement file format (docs/placement-format.md), public: prospective lenders read it too."""
    return render(request, "portal/format.html", {"doc": FORMAT_DOC.read_text(encoding="utf-8")})


@lender_view
@require_GET
def portal_batch_progress(request, pk: int):
    return JsonResponse(selectors.batch_progress(batch=_batch(request, pk)))


@lender_view
@require_GET
def portal_accounts(request):
    form = AccountSearchForm(request.GET or None)
    q = status = ""
    if form.is_valid():
        q, status = form.cleaned_data["q"], form.cleaned_data["status"]
    page = Paginator(selectors.portal_account_search(user=request.user, q=q, status=status), 50).get_page(request.GET.get("page"))
    outcomes = dict(ContactAttempt.Outcome.choices)
    for acc in page:
        acc.last_outcome_label = outcomes.get(acc.last_outcome, acc.last_outcome or "")
        acc.phones_masked = ", ".join(mask_phone(p) for p in acc.borrower.phones)
        acc.national_id_masked = mask_national_id(acc.borrower.national_id)
    return render(request, "portal/accounts.html", {"form": form, "page": page, "q": q, "status": status,
                                                    "query": page_query(request)})


@lender_view
@require_POST
def portal_recall(request):
    form = RecallForm(request.POST)
    if form.is_valid():
        try:
            result = recalls.accounts_recall(actor=request.user, refs=form.refs(), reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            _form_errors(request, exc)
        else:
            messages.success(request, _("Recalled: %(n)s. Already out of collection: %(u)s. Unknown: %(x)s.") % {
                "n": len(result["recalled"]), "u": len(result["unchanged"]),
                "x": ", ".join(result["unknown"]) or "0"})
    else:
        messages.error(request, _("Give at least one external reference."))
    return redirect("portal-home")


@lender_view
def portal_mapping(request):
    lender = request.user.lender
    current = selectors.column_mapping_for(lender=lender)
    initial = {canonical: header for header, canonical in current.items()}
    Form = mapping_form_class()
    form = Form(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        mapping = {header: key for key, header in form.cleaned_data.items() if header}
        try:
            services.column_mapping_save(actor=request.user, lender=lender, mapping=mapping)
        except ValidationError as exc:
            _form_errors(request, exc)
        else:
            messages.success(request, _("Column mapping saved."))
            return redirect("portal-mapping")
    return render(request, "portal/mapping.html", {"form": form, "columns": COLUMNS, "recall_columns": RECALL_COLUMNS})


@lender_view
@require_GET
def portal_export(request, fmt: str):
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    if fmt == "json":
        response = StreamingHttpResponse(selectors.results_json(user=request.user), content_type="application/json")
    else:
        # For people (labels, separators, local times); the JSON export stays machine-readable.
        response = StreamingHttpResponse(selectors.results_csv_readable(user=request.user),
                                         content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="results-{request.user.lender.code}-{stamp}.{fmt}"'
    if anchor := audit_checkpoint_export(lender_id=request.user.lender_id):
        response["X-Audit-Checkpoint"] = anchor  # signed head of this lender's audit chain (compliance/audit.py)
    return response


# ---------------------------------------------------------------------------------------------
# Registration (public) and approval (supervisors)


def lender_register(request):
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and (wait := LENDER_SIGNUPS.retry_after(ident=client_address(request))):
        form.is_valid()
        form.add_error(None, _("Too many sign-ups from your address. Try again in %(minutes)s minute(s).")
                       % {"minutes": (wait + 59) // 60})
        return render(request, "portal/register.html", {"form": form}, status=429)
    if request.method == "POST" and form.is_valid():
        LENDER_SIGNUPS.hit(ident=client_address(request))  # valid forms only: typos do not count
        try:
            lenders.lender_register(**form.cleaned_data)
        except ValidationError as exc:
            for field, msgs in exc.message_dict.items():
                for msg in msgs:
                    form.add_error(field if field in form.fields else None, msg)
        else:
            return redirect("lender-register-done")
    return render(request, "portal/register.html", {"form": form})


def lender_register_done(request):
    return render(request, "portal/register_done.html")


@supervisor_view
@require_GET
def lender_approvals(request):
    pending = list(selectors.lenders_pending())
    for lender in pending:
        lender.kind_label = lenders.lender_kind_label(lender.kind)
    return render(request, "portal/approvals.html", {
        "pending": pending,
        "recent": selectors.lenders_recently_decided(),
    })


@supervisor_view
@require_POST
def lender_decide(request, pk: int, decision: str):
    lender = get_object_or_404(Lender, pk=pk)
    try:
        if decision == "approve":
            lenders.lender_approve(actor=request.user, lender=lender)
            messages.success(request, _("%(name)s is active; its users can sign in.") % {"name": lender.name})
        else:
            lenders.lender_reject(actor=request.user, lender=lender, reason=request.POST.get("reason", ""))
            messages.success(request, _("%(name)s was refused.") % {"name": lender.name})
    except ValidationError as exc:
        _form_errors(request, exc)
    return redirect("lender-approvals")
