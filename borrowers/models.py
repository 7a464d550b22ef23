"""Borrower self-service: access links, plan proposals, disputes with evidence, consent records.

Writes go through ``borrowers.services`` (each audited in the same transaction).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from cases.models import Borrower, OverdueAccount


class AccessToken(models.Model):
    """A single-purpose, expiring link sent to a borrower. Only the SHA-256 of the token is stored,
    so a database reader cannot open anyone's page; the raw token exists only in the message."""

    class Purpose(models.TextChoices):
        ACCESS = "access", _("Borrower page access")

    borrower = models.ForeignKey(Borrower, on_delete=models.PROTECT, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.ACCESS)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveSmallIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["borrower", "created_at"])]


class PlanProposal(models.Model):
    """A repayment plan the borrower proposed; an agent accepts it (a real plan is made) or counters."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", _("Proposed")
        ACCEPTED = "accepted", _("Accepted")
        COUNTERED = "countered", _("Countered")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="plan_proposals")
    total_amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    # [{"due_date": "YYYY-MM-DD", "amount": "123.45"}, ...]
    instalments = models.JSONField(default=list)
    note = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PROPOSED)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    counter_note = models.CharField(max_length=500, blank=True)
    plan = models.ForeignKey("cases.RepaymentPlan", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.CheckConstraint(name="proposal_total_positive", condition=Q(total_amount__gt=0))]
        indexes = [models.Index(fields=["status", "created_at"])]


class Dispute(models.Model):
    class Reason(models.TextChoices):
        NOT_MINE = "not_mine", _("This debt is not mine")
        AMOUNT_WRONG = "amount_wrong", _("The amount is wrong")
        ALREADY_PAID = "already_paid", _("I already paid")
        IDENTITY_THEFT = "identity_theft", _("Identity theft or fraud")
        OTHER = "other", _("Other")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        VERIFICATION = "verification", _("Verification requested from the lender")
        UPHELD = "upheld", _("Upheld")
        REJECTED = "rejected", _("Rejected")

    CLOSED_STATUSES = ("upheld", "rejected")

    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="disputes")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    text = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    deadline = models.DateField(help_text="answer due by (BORROWER_DISPUTE_DAYS after it was raised)")
    # The account's status before the hold, restored when the dispute is rejected.
    prior_status = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)
    verification_requested_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    resolution_note = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "deadline"])]


def evidence_path(instance: DisputeEvidence, filename: str) -> str:
    """A random name with the extension of the type read from the bytes (the borrower's own file name
    is kept in the row only, never used on disk)."""
    ext = settings.BORROWER_EVIDENCE_TYPES.get(instance.content_type, ".bin")
    return f"disputes/{uuid.uuid4().hex}{ext}"


class DisputeEvidence(models.Model):
    dispute = models.ForeignKey(Dispute, on_delete=models.PROTECT, related_name="evidence")
    file = models.FileField(upload_to=evidence_path)
    original_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=50)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)


class ConsentRecord(models.Model):
    """When a borrower gave or withdrew a contact preference (the Borrower row keeps only the current value)."""

    borrower = models.ForeignKey(Borrower, on_delete=models.PROTECT, related_name="+")
    field = models.CharField(max_length=30)
    value = models.BooleanField()
    source = models.CharField(max_length=20, default="borrower_page")
    recorded_at = models.DateTimeField(auto_now_add=True)


class Complaint(models.Model):
    """A complaint about how collection was done (GB/T 45251 complaint handling): from the borrower on the
    borrower page or from a third party (entered by staff); assigned to a supervisor, answered by a deadline."""

    class Source(models.TextChoices):
        BORROWER = "borrower", _("Borrower")
        THIRD_PARTY = "third_party", _("Third party")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ANSWERED = "answered", _("Answered")

    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="complaints")
    source = models.CharField(max_length=12, choices=Source.choices)
    complainant = models.CharField(max_length=200, blank=True)  # a third party's name (the borrower's is known)
    contact = models.CharField(max_length=200, blank=True)
    text = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    deadline = models.DateField(help_text="answer due by (BORROWER_COMPLAINT_DAYS after it was received)")
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    answer = models.TextField(blank=True)
    answered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "deadline"])]
        constraints = [models.CheckConstraint(
            name="complaint_answered_has_answer",
            condition=Q(status="open") | (~Q(answer="") & Q(answered_at__isnull=False)))]


class EducationPage(models.Model):
    """A short page shown on the borrower page (rights, how collection works, where to get advice);
    one row per topic and language, edited by supervisors."""

    class Language(models.TextChoices):
        ZH = "zh-hans", "简体中文"
        EN = "en", "English"

    slug = models.SlugField(max_length=40)
    language = models.CharField(max_length=10, choices=Language.choices)
    position = models.PositiveSmallIntegerField(default=0)
    title = models.CharField(max_length=200)
    body = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "slug", "language"]
        constraints = [models.UniqueConstraint(fields=["slug", "language"], name="education_page_unique")]


class MessageTemplate(models.Model):
    """A lender's text for one kind of message in one language, edited by supervisors. Variables are
    checked on save (``borrowers.messages.template_check``); without a row the built-in text is used."""

    class Kind(models.TextChoices):
        BORROWER_LINK = "borrower_link", _("Borrower page link")
        CONTACT_REQUEST = "contact_request", _("Request to call back (third party)")
        # Borrower reminders (reminders.Reminder.Kind of the same value); agent notifications have no template.
        PROMISE_DUE = "promise_due", _("Promise to pay due (reminder to the borrower)")
        INSTALMENT_DUE = "instalment_due", _("Instalment due (reminder to the borrower)")

    class Language(models.TextChoices):
        ZH = "zh-hans", "简体中文"
        EN = "en", "English"

    lender = models.ForeignKey("cases.Lender", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    language = models.CharField(max_length=10, choices=Language.choices)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["lender", "kind", "language"], name="message_template_unique")]


class MessageDelivery(models.Model):
    """The provider's id of a message the platform sent, tying a delivery receipt to its contact attempt."""

    class Status(models.TextChoices):
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    attempt = models.ForeignKey("cases.ContactAttempt", on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=10)
    provider_message_id = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SENT)
    detail = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "provider_message_id"], name="delivery_provider_id")]
