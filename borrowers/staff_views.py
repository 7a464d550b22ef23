"""Staff side of borrower requests: plan proposals (agents of the account, supervisors), disputes and
holds (supervisors), evidence files (staff who may see the account only; never a public URL)."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cases.models import Borrower, Lender, OverdueAccount
from cases.selectors import account_list_for_user
from cases.services import ContactRefused
from compliance.messages import violation_text
from supervision.selectors import mask_name
from supervision.views import supervisor_required

from . import selectors, services
from .forms import (
    CaseMessageForm,
    ComplaintAnswerForm,
    CounterForm,
    EducationPageForm,
    HoldLiftForm,
    LinkForm,
    MessageTemplateForm,
    ResolveForm,
    ThirdPartyComplaintForm,
)
from .messages import agent_message_send
from .models import Complaint, Dispute, DisputeEvidence, EducationPage, MessageTemplate, PlanProposal


def staff_view(view):
    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not (request.user.is_agent or request.user.is_supervisor):
            raise PermissionDenied(_("Agents and supervisors only."))
        return view(request, *args, **kwargs)

    return wrapper


def _scoped(qs, user, field: str = "account"):
    """Supervisors see all; agents only what is assigned to them (anything else is a 404)."""
    return qs if user.is_supervisor else qs.filter(**{f"{field}__assigned_agent": user})


def _errors(request, exc: ValidationError) -> None:
    for msg in exc.messages:
        messages.error(request, msg)


def _account_by_ref(user, ref: str, lender_id: int | None = None) -> OverdueAccount:
    """The account with this reference among those ``user`` may work. A reference is unique per lender only, so
    one several lenders use needs the lender chosen (never a guess: a complaint or a link must not land on another
    lender's borrower). None the user may work is a 404, like any account that is not theirs."""
    accounts = account_list_for_user(user=user).filter(external_ref=ref.strip())
    if lender_id is not None:
        accounts = accounts.filter(lender_id=lender_id)
    found = list(accounts.order_by("lender__name", "pk"))
    if not found:
        raise Http404
    if len(found) > 1:
        raise ValidationError(_("The reference %(ref)s is used by several lenders (%(lenders)s). Choose the lender "
                                "and send again.") % {"ref": ref.strip(),
                                                      "lenders": ", ".join(a.lender.name for a in found)})
    return found[0]


def _lender_id(request) -> int | None:
    raw = request.POST.get("lender", "").strip()
    return int(raw) if raw.isdigit() else None


def _held() -> list[Borrower]:
    """Borrower records with a hold on, each with its holds and a masked name (supervisors lift them here)."""
    any_hold = Q()
    for flag in Borrower.HOLD_FIELDS:
        any_hold |= Q(**{flag: True})
    rows = list(Borrower.objects.filter(any_hold).select_related("lender").order_by("pk")[:200])
    for b in rows:
        b.masked = mask_name(b.name)
        b.hold_choices = [(h, Borrower._meta.get_field(h).verbose_name) for h in sorted(b.holds)]
    return rows


@staff_view
def proposal_list(request):
    proposals = _scoped(PlanProposal.objects.select_related("account", "account__lender"), request.user)
    disputes = _scoped(Dispute.objects.select_related("account", "account__lender").prefetch_related("evidence"),
                       request.user)
    return render(request, "borrowers/staff.html", {
        "proposals": proposals.order_by("-created_at")[:200],
        "disputes": disputes.order_by("status", "deadline")[:200],
        "holds": _held() if request.user.is_supervisor else [],
        "counter_form": CounterForm(), "resolve_form": ResolveForm(), "lift_form": HoldLiftForm(),
        "link_form": LinkForm(), "today": timezone.localdate(), "complaint_form": ThirdPartyComplaintForm(),
        # For a reference several lenders use (the forms show the choice only when there is one to make).
        # (A supervisor works every lender's accounts: no scan of the account table to list them.)
        "lenders": (Lender.objects.all() if request.user.is_supervisor else
                    Lender.objects.filter(pk__in=account_list_for_user(user=request.user).values("lender_id")))
        .order_by("name"),
    })


@require_POST
@staff_view
def proposal_decide(request, pk: int, decision: str):
    proposal = get_object_or_404(_scoped(PlanProposal.objects.all(), request.user), pk=pk)
    try:
        if decision == "accept":
            proposal = services.plan_proposal_accept(actor=request.user, proposal=proposal)
            if proposal.plan.status == "pending":  # below the lender's settlement terms
                messages.warning(request, _("Plan accepted: it is below the lender's settlement terms and waits "
                                            "for a supervisor's approval."))
            else:
                messages.success(request, _("Plan accepted."))
        else:
            form = CounterForm(request.POST)
            if not form.is_valid():
                raise ValidationError(_("Say what you can offer instead."))
            services.plan_proposal_counter(actor=request.user, proposal=proposal, note=form.cleaned_data["note"])
            messages.success(request, _("Counter-offer recorded."))
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("borrowers:staff")


@require_POST
@staff_view
def dispute_verify(request, pk: int):
    dispute = get_object_or_404(_scoped(Dispute.objects.all(), request.user), pk=pk)
    try:
        services.dispute_verification_request(actor=request.user, dispute=dispute)
        messages.success(request, _("Verification requested from the lender."))
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("borrowers:staff")


@require_POST
@supervisor_required
def dispute_resolve(request, pk: int):
    dispute = get_object_or_404(Dispute, pk=pk)
    form = ResolveForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(_("Choose a decision and give the reason."))
        services.dispute_resolve(actor=request.user, dispute=dispute, outcome=form.cleaned_data["outcome"],
                                 note=form.cleaned_data["note"])
        messages.success(request, _("Dispute resolved."))
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("borrowers:staff")


@require_POST
@supervisor_required
def hold_lift(request, pk: int):
    borrower = get_object_or_404(Borrower, pk=pk)
    form = HoldLiftForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(_("Give the reason for lifting the hold."))
        services.borrower_hold_lift(actor=request.user, borrower=borrower, flag=request.POST.get("flag", "dispute"),
                                    reason=form.cleaned_data["reason"])
        messages.success(request, _("Hold lifted."))
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("borrowers:staff")


@require_POST
@staff_view
def case_message(request, pk: int):
    """Send the borrower an SMS or email from the case page: the compliance gate decides first, like any
    outreach; a refusal says which rules and when it would be lawful."""
    from cases.services import account_lock_acquire
    from cases.views.presenters import agent_zone, fmt_in

    account = get_object_or_404(account_list_for_user(user=request.user).select_related("borrower", "lender"), pk=pk)
    back = redirect(f"{reverse('case-detail', args=[account.pk])}#panel-message")
    ok, fresh = account_lock_acquire(actor=request.user, account=account)
    if not ok:  # the case page's rule for every write
        messages.error(request, _("%(user)s is working this account until %(until)s; try again later.") % {
            "user": fresh.locked_by.get_username() if fresh.locked_by else "?",
            "until": fmt_in(fresh.locked_until, agent_zone(request.user))})
        return back
    form = CaseMessageForm(request.POST)
    if not form.is_valid():
        for name, errors in form.errors.items():
            for error in errors:
                messages.error(request, f"{form.fields[name].label}: {error}")
        return back
    try:
        agent_message_send(account=account, actor=request.user, channel=form.cleaned_data["channel"],
                           text=form.cleaned_data["text"])
        messages.success(request, _("Message sent."))
    except ContactRefused as exc:
        d = exc.decision
        why = "; ".join(violation_text(v) for v in d.violations)
        if d.next_allowed_at:
            messages.error(request, _("Not sent: %(why)s. Next lawful time: %(at)s.") % {
                "why": why, "at": fmt_in(d.next_allowed_at, agent_zone(request.user))})
        else:
            messages.error(request, _("Not sent: %(why)s") % {"why": why})
    except ValidationError as exc:
        _errors(request, exc)
    return back


@require_POST
@staff_view
def link_send(request):
    """Send the borrower a page link for an account the user may work; it passes the gate like any message."""
    form = LinkForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give the account reference and the channel."))
        return redirect("borrowers:staff")
    try:
        account = _account_by_ref(request.user, form.cleaned_data["external_ref"], _lender_id(request))
        services.access_link_send(account=account, actor=request.user, channel=form.cleaned_data["channel"])
        messages.success(request, _("Link sent."))
    except ContactRefused as exc:
        messages.error(request, _("Not sent: %(why)s") % {
            "why": "; ".join(violation_text(v) for v in exc.decision.violations)})
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("borrowers:staff")


@login_required
def evidence_download(request, pk: int):
    """Only staff who may see the account, or the account's lender; served as an attachment."""
    ev = get_object_or_404(DisputeEvidence.objects.select_related("dispute__account"), pk=pk)
    account, user = ev.dispute.account, request.user
    allowed = (user.is_supervisor or (user.is_agent and account.assigned_agent_id == user.pk)
               or (user.is_lender_user and account.lender_id == user.lender_id))
    if not allowed:
        raise Http404
    services.evidence_viewed(actor=user, evidence=ev)
    return FileResponse(ev.file.open("rb"), as_attachment=True, filename=ev.original_name,
                        content_type=ev.content_type)


# ---- complaints -----------------------------------------------------------------------------------


@require_POST
@staff_view
def complaint_new(request):
    """A third party's complaint, entered by an agent (about an account they work) or a supervisor."""
    form = ThirdPartyComplaintForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give the account reference, the complainant's name and the complaint."))
        return redirect("borrowers:staff")
    d = form.cleaned_data
    try:
        account = _account_by_ref(request.user, d["external_ref"], _lender_id(request))
        services.complaint_register(actor=request.user, account=account, complainant=d["complainant"],
                                    contact=d["contact"], text=d["text"])
        messages.success(request, _("Complaint recorded."))
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("borrowers:staff")


@supervisor_required
def complaint_list(request):
    from cases.models import User

    status = request.GET.get("status", "")
    return render(request, "borrowers/complaints.html", {
        "complaints": selectors.complaints_list(status=status if status in Complaint.Status.values else ""),
        "supervisors": User.objects.filter(role=User.Role.SUPERVISOR, is_active=True).order_by("username"),
        "answer_form": ComplaintAnswerForm(), "status": status,
    })


@require_POST
@supervisor_required
def complaint_assign(request, pk: int):
    from cases.models import User

    complaint = get_object_or_404(Complaint, pk=pk)
    assignee = User.objects.filter(pk=request.POST.get("assignee") or 0).first()
    try:
        if assignee is None:
            raise ValidationError(_("Choose a supervisor."))
        services.complaint_assign(actor=request.user, complaint=complaint, assignee=assignee)
        messages.success(request, _("Complaint assigned."))
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("borrowers:complaints")


@require_POST
@supervisor_required
def complaint_answer(request, pk: int):
    complaint = get_object_or_404(Complaint, pk=pk)
    form = ComplaintAnswerForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(_("Write the answer."))
        services.complaint_answer(actor=request.user, complaint=complaint, answer=form.cleaned_data["answer"])
        messages.success(request, _("Complaint answered."))
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("borrowers:complaints")


# ---- education pages ------------------------------------------------------------------------------


@supervisor_required
def education_list(request):
    return render(request, "borrowers/education_list.html", {"pages": EducationPage.objects.all()})


@supervisor_required
def education_edit(request, pk: int):
    page = get_object_or_404(EducationPage, pk=pk)
    form = EducationPageForm(request.POST or None, initial={"title": page.title, "body": page.body})
    if request.method == "POST" and form.is_valid():
        try:
            services.education_page_save(actor=request.user, page=page, title=form.cleaned_data["title"],
                                         body=form.cleaned_data["body"])
            messages.success(request, _("Page saved."))
            return redirect("borrowers:education")
        except ValidationError as exc:
            _errors(request, exc)
    return render(request, "borrowers/education_edit.html", {"page": page, "form": form})


# ---- message templates ----------------------------------------------------------------------------


@supervisor_required
def template_list(request):
    """All lenders' templates; the form creates or replaces one (variables are checked on save). Each
    kind is listed with its recipient, the variables it may and must use, and what it is for."""
    from .messages import message_template_kinds, message_template_save

    editing = MessageTemplate.objects.filter(pk=request.GET.get("edit") or 0).first()
    initial = ({"lender": editing.lender_id, "kind": editing.kind, "language": editing.language,
                "subject": editing.subject, "body": editing.body} if editing else {})
    form = MessageTemplateForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            message_template_save(actor=request.user, lender=d["lender"], kind=d["kind"], language=d["language"],
                                  subject=d["subject"], body=d["body"])
            messages.success(request, _("Template saved."))
            return redirect("borrowers:templates")
        except ValidationError as exc:
            _errors(request, exc)
    return render(request, "borrowers/templates.html", {
        "templates": MessageTemplate.objects.select_related("lender").order_by("lender__name", "kind", "language"),
        "kinds": message_template_kinds(), "form": form})
