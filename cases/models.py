"""Domain model: lenders (tenants), users, borrowers, overdue accounts and their history.

Writes go through ``cases.services``; ContactAttempt rows in particular can only be
created inside ``contact_attempt_record`` (the compliance gate), see ``ContactAttempt.save``.
"""

from __future__ import annotations

import contextvars
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Case, Q, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Concat, Lower, Upper
from django.utils.translation import gettext_lazy as _

CURRENCIES = [("CNY", "CNY"), ("USD", "USD"), ("AUD", "AUD"), ("HKD", "HKD"), ("EUR", "EUR")]
JURISDICTIONS = [("CN", _("China")), ("US", _("United States")), ("US-MA", _("Massachusetts, US")), ("AU", _("Australia"))]


class Lender(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending approval")
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")

    name = models.CharField(_("name"), max_length=200)
    code = models.SlugField(_("code"), max_length=50, unique=True)
    kind = models.CharField(_("kind"), max_length=30, blank=True, help_text=_("bank, consumer finance, online lender…"))
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.PENDING)
    registration_no = models.CharField(_("registration number"), max_length=32, blank=True,
                                       help_text=_("Unified social credit code (统一社会信用代码)"))
    contact_name = models.CharField(_("contact person"), max_length=100, blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=32, blank=True)
    contact_email = models.EmailField(_("contact email"), blank=True)
    approved_by = models.ForeignKey("User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    default_jurisdiction = models.CharField(max_length=10, choices=JURISDICTIONS, default="CN")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("lender")
        verbose_name_plural = _("lenders")

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    class Role(models.TextChoices):
        AGENT = "agent", _("Agent")
        SUPERVISOR = "supervisor", _("Supervisor")
        LENDER = "lender", _("Lender user")
        ADMIN = "admin", _("Administrator")

    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.AGENT)
    lender = models.ForeignKey(
        Lender, null=True, blank=True, on_delete=models.PROTECT, related_name="users",
        help_text=_("Required for lender users: the one lender whose data they see."),
    )
    # Agents: lenders/jurisdictions they may be assigned work from (empty = any).
    lenders = models.ManyToManyField(Lender, blank=True, related_name="agents")
    jurisdictions = models.JSONField(default=list, blank=True)
    time_zone = models.CharField(max_length=64, default="Asia/Shanghai")

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="lender_user_has_lender",
                condition=~Q(role="lender") | Q(lender__isnull=False),
            )
        ]

    @property
    def is_agent(self) -> bool:
        return self.role == self.Role.AGENT

    @property
    def is_supervisor(self) -> bool:
        return self.role in (self.Role.SUPERVISOR, self.Role.ADMIN) or self.is_superuser

    @property
    def is_lender_user(self) -> bool:
        return self.role == self.Role.LENDER


class Borrower(models.Model):
    # Indexed by the unique (lender, id) below, which accounts' composite foreign key references.
    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="borrowers", db_index=False)
    name = models.CharField(_("name"), max_length=200)
    national_id = models.CharField(_("national ID"), max_length=32, blank=True)
    phones = models.JSONField(_("phones"), default=list, blank=True)
    emails = models.JSONField(_("emails"), default=list, blank=True)
    address = models.TextField(_("address"), blank=True)
    region = models.CharField(_("region"), max_length=100, blank=True)
    jurisdiction = models.CharField(_("jurisdiction"), max_length=10, choices=JURISDICTIONS, default="CN")
    time_zones = models.JSONField(
        _("time zones"), default=list, blank=True,
        help_text=_("IANA zones where the borrower may be; outreach must be lawful in all of them."),
    )
    sms_consent = models.BooleanField(default=True)
    email_consent = models.BooleanField(default=True)
    after_hours_consent = models.BooleanField(default=False)
    # The times the borrower said suit them ([{"days": ["mon", ...], "start": "18:00", "end": "21:00"}], local
    # time; empty: no preference): the gate allows outreach only inside them as well as inside the policy's hours.
    # db_default: raw bulk writers (the COPY importer, the benches) that list their columns still get "none".
    contact_windows = models.JSONField(_("convenient contact times"), default=list, blank=True,
                                       db_default=Value([], output_field=models.JSONField()))
    cease = models.BooleanField(_("cease communication"), default=False)
    dispute = models.BooleanField(_("dispute"), default=False)
    attorney = models.BooleanField(_("attorney-represented"), default=False)
    bankruptcy = models.BooleanField(_("bankruptcy"), default=False)
    deceased = models.BooleanField(_("deceased"), default=False)
    vulnerable = models.BooleanField(_("vulnerable"), default=False)
    # Addresses (E.164 numbers, lower-case emails) that asked to stop: STOP / 退订 / unsubscribe.
    opted_out = models.JSONField(_("opted-out addresses"), default=list, blank=True)
    # One natural person across lenders (each lender has its own Borrower record): the national ID,
    # else the first phone and the name. Computed by the database, so every writer (the bulk
    # importers included) gets it; the compliance gate counts and locks per person with it.
    person_key = models.GeneratedField(
        expression=Case(
            When(~Q(national_id=""), then=Concat(Value("id:"), Upper("national_id"), output_field=models.TextField())),
            When(phones__0__isnull=False, then=Concat(Value("pn:"), KT("phones__0"), Value("|"), Lower("name"),
                                                      output_field=models.TextField())),
            default=Value(""),
            output_field=models.TextField(),
        ),
        output_field=models.CharField(max_length=300),
        db_persist=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    HOLD_FIELDS = ("cease", "dispute", "attorney", "bankruptcy", "deceased")

    class Meta:
        verbose_name = _("borrower")
        verbose_name_plural = _("borrowers")
        constraints = [
            models.UniqueConstraint(
                fields=["lender", "national_id"], condition=~Q(national_id=""), name="uniq_borrower_national_id"
            ),
            models.UniqueConstraint(fields=["lender", "id"], name="uniq_borrower_lender_id"),
        ]
        indexes = [models.Index(fields=["person_key"], condition=~Q(person_key=""), name="borrower_person_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def holds(self) -> frozenset[str]:
        return frozenset(f for f in self.HOLD_FIELDS if getattr(self, f))

    @property
    def zones(self) -> tuple[str, ...]:
        """Where the borrower may be: the known zones, else every zone of the jurisdiction (never the server's)."""
        from compliance.rules import JURISDICTION_ZONES

        return tuple(self.time_zones) or JURISDICTION_ZONES.get(self.jurisdiction, ())

    @property
    def person(self) -> str:
        """The person lock/count key: person_key, or this record alone when it has neither ID nor phone."""
        return self.person_key or f"b:{self.pk}"


class OverdueAccount(models.Model):
    class Status(models.TextChoices):
        NEW = "new", _("New")
        ASSIGNED = "assigned", _("Assigned")
        IN_CONTACT = "in_contact", _("In contact")
        PROMISE = "promise", _("Promise to pay")
        PLAN = "plan", _("Repayment plan")
        DISPUTE = "dispute", _("Disputed")
        PAID = "paid", _("Paid")
        SETTLED = "settled", _("Settled")
        LEGAL = "legal", _("Legal escalation")
        CEASED = "ceased", _("Cease received")
        RECALLED = "recalled", _("Recalled")
        CLOSED = "closed", _("Closed")

    OPEN_STATUSES = ("new", "assigned", "in_contact", "promise", "plan", "dispute", "legal")

    # No single-column index: (lender, status) and (lender, external_ref) lead with lender_id already,
    # and every extra index slows the million-row placement import.
    # On PostgreSQL one composite foreign key (lender, borrower) -> borrower (lender, id) stands for
    # both (migration 0004): an account's borrower must belong to the account's lender, and the
    # import pays one check per row instead of two. SQLite keeps the two plain foreign keys.
    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="accounts", db_index=False,
                               db_constraint=False)
    borrower = models.ForeignKey(Borrower, on_delete=models.PROTECT, related_name="accounts", db_constraint=False)
    external_ref = models.CharField(_("external reference"), max_length=64)
    product = models.CharField(_("product"), max_length=100, blank=True)
    principal = models.DecimalField(_("principal"), max_digits=14, decimal_places=2, default=Decimal("0"))
    balance = models.DecimalField(
        _("outstanding balance"), max_digits=14, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCIES, default="CNY")
    due_date = models.DateField(_("due date"))
    last_payment_date = models.DateField(_("last payment date"), null=True, blank=True)
    days_past_due = models.PositiveIntegerField(_("days past due"), default=0)
    bucket = models.CharField(_("bucket"), max_length=4, default="M0")
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.NEW)
    assigned_agent = models.ForeignKey(  # indexed by (assigned_agent, status) where assigned
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_accounts",
        db_index=False,
    )
    # Soft lock: one agent works an account at a time.
    locked_by = models.ForeignKey(  # partial index below: only locked rows are indexed
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
    )
    locked_until = models.DateTimeField(null=True, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    placed_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("overdue account")
        verbose_name_plural = _("overdue accounts")
        constraints = [
            models.UniqueConstraint(fields=["lender", "external_ref"], name="uniq_account_external_ref"),
            models.CheckConstraint(name="account_balance_non_negative", condition=Q(balance__gte=0)),
        ]
        indexes = [
            # Agents' queues; unassigned rows (every freshly imported one) add no index entry.
            models.Index(fields=["assigned_agent", "status"], condition=Q(assigned_agent__isnull=False),
                         name="account_agent_status_idx"),
            models.Index(fields=["lender", "status"]),
            # For SET NULL when a user is deleted; new (unlocked) rows add no index entry.
            models.Index(fields=["locked_by"], condition=Q(locked_by__isnull=False), name="account_locked_by_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.external_ref} ({self.lender.code})" if self.lender_id else self.external_ref

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


# Set only inside cases.services.contact_attempt_record: the one write path for outreach.
_GATE = contextvars.ContextVar("contact_attempt_gate", default=False)


class GateClosed(RuntimeError):
    """Raised when code tries to create a ContactAttempt outside the compliance gate."""


class GatedQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        if not _GATE.get():
            raise GateClosed("ContactAttempt rows are created only by cases.services.contact_attempt_record")
        return super().bulk_create(objs, *args, **kwargs)


class ContactAttempt(models.Model):
    class Channel(models.TextChoices):
        CALL = "call", _("Phone call")
        SMS = "sms", _("SMS")
        EMAIL = "email", _("Email")
        LETTER = "letter", _("Letter")
        VISIT = "visit", _("Field visit")

    class Direction(models.TextChoices):
        OUTBOUND = "outbound", _("Outbound")
        INBOUND = "inbound", _("Inbound")

    class Party(models.TextChoices):
        BORROWER = "borrower", _("Borrower")
        THIRD_PARTY = "third_party", _("Third party")

    class Outcome(models.TextChoices):
        NOT_CONNECTED = "not_connected", _("Not connected")
        NO_ANSWER = "no_answer", _("No answer")
        BUSY = "busy", _("Busy")
        VOICEMAIL = "voicemail", _("Voicemail")
        WRONG_NUMBER = "wrong_number", _("Wrong number")
        RIGHT_PARTY_CONTACT = "right_party_contact", _("Right-party contact (conversation)")
        PROMISE = "promise", _("Promise to pay")
        REFUSED = "refused", _("Refused to pay")
        DISPUTE_RAISED = "dispute_raised", _("Dispute raised")
        THIRD_PARTY_CONTACT = "third_party_contact", _("Third-party contact")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")
        UNREPORTED = "unreported", _("Not reported (closed after 30 minutes)")
        PENDING = "pending", _("In progress")

    class State(models.TextChoices):
        STARTED = "started", _("Started")
        COMPLETED = "completed", _("Completed")
        UNREPORTED = "unreported", _("Unreported")

    class Source(models.TextChoices):
        WEB = "web", _("Web")
        API = "api", _("API")
        ADMIN = "admin", _("Admin")
        REMINDER = "reminder", _("Reminder")
        IMPORT = "import", _("Import")

    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="+")
    borrower = models.ForeignKey(Borrower, on_delete=models.PROTECT, related_name="contact_attempts")
    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="contact_attempts")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # A field visit's second collector (CN: home visits by at least two collectors).
    second_collector = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        verbose_name=_("second collector"),
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    direction = models.CharField(_("direction"), max_length=10, choices=Direction.choices, default=Direction.OUTBOUND)
    party = models.CharField(_("contacted party"), max_length=12, choices=Party.choices, default=Party.BORROWER)
    outcome = models.CharField(_("outcome"), max_length=24, choices=Outcome.choices)
    phone = models.CharField(_("number"), max_length=32, blank=True)
    occurred_at = models.DateTimeField(_("time"))
    recorded_at = models.DateTimeField(auto_now_add=True)
    notes = models.TextField(_("notes"), blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.WEB)
    policy_code = models.CharField(max_length=10)
    policy_version = models.PositiveIntegerField()
    # Started by the gate (counts at once), completed with its outcome, or closed as unreported.
    state = models.CharField(_("state"), max_length=12, choices=State.choices, default=State.COMPLETED)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The borrower's person key when recorded: caps and holds that follow the person across lenders.
    person_key = models.CharField(max_length=300, blank=True)
    # Other debts of the same borrower this outreach was also about (each counts it, Reg F 1006.14(b)(3)).
    other_accounts = models.JSONField(default=list, blank=True)
    # A contact reported after the fact that broke a rule: stored all the same, flagged, counted.
    breach = models.JSONField(_("rules broken"), default=list, blank=True)
    is_breach = models.BooleanField(_("breach"), default=False)

    objects = GatedQuerySet.as_manager()

    class Meta:
        verbose_name = _("contact attempt")
        verbose_name_plural = _("contact attempts")
        indexes = [
            models.Index(fields=["borrower", "occurred_at"]),
            models.Index(fields=["account", "occurred_at"]),
            models.Index(fields=["person_key", "occurred_at"], name="attempt_person_time_idx"),
            # The sweep that closes started attempts left open finds them without a scan.
            models.Index(fields=["recorded_at"], condition=Q(state="started"), name="attempt_started_idx"),
        ]

    def save(self, *args, **kwargs):
        if self._state.adding and not _GATE.get():
            raise GateClosed("ContactAttempt rows are created only by cases.services.contact_attempt_record")
        super().save(*args, **kwargs)

    @property
    def account_ids(self) -> list[int]:
        return [self.account_id, *self.other_accounts]


class ContactAttemptAccount(models.Model):
    """Each further debt an attempt was about, so the debt's timeline and counts include it."""

    attempt = models.ForeignKey(ContactAttempt, on_delete=models.PROTECT, related_name="covered")
    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="covered_attempts")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["attempt", "account"], name="uniq_attempt_account")]


class PromiseToPay(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        KEPT = "kept", _("Kept")
        BROKEN = "broken", _("Broken")
        CANCELLED = "cancelled", _("Cancelled")

    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="promises")
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))])
    currency = models.CharField(max_length=3, choices=CURRENCIES)
    due_date = models.DateField(_("promised date"))
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    paid_amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(name="promise_amount_positive", condition=Q(amount__gt=0))]
        indexes = [models.Index(fields=["status", "due_date"])]


class RepaymentPlan(models.Model):
    class Status(models.TextChoices):
        # A plan for less than the balance outside the lender's settlement terms waits for a supervisor
        # (finance.Settlement, the settlement queue): approved it becomes active, declined cancelled.
        PENDING = "pending", _("Awaiting approval")
        ACTIVE = "active", _("Active")
        COMPLETED = "completed", _("Completed")
        BROKEN = "broken", _("Broken")
        CANCELLED = "cancelled", _("Cancelled")

    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="plans")
    total_amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, choices=CURRENCIES)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)


class Instalment(models.Model):
    class Status(models.TextChoices):
        DUE = "due", _("Due")
        PAID = "paid", _("Paid")
        MISSED = "missed", _("Missed")
        CANCELLED = "cancelled", _("Cancelled")

    plan = models.ForeignKey(RepaymentPlan, on_delete=models.CASCADE, related_name="instalments")
    seq = models.PositiveIntegerField()
    due_date = models.DateField()
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    paid_amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DUE)

    class Meta:
        ordering = ["plan", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "seq"], name="uniq_instalment_seq"),
            models.CheckConstraint(name="instalment_amount_positive", condition=Q(amount__gt=0)),
        ]
        indexes = [models.Index(fields=["status", "due_date"])]


class Payment(models.Model):
    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, choices=CURRENCIES)
    paid_at = models.DateTimeField(_("paid at"))
    method = models.CharField(_("method"), max_length=30, blank=True)
    reference = models.CharField(_("reference"), max_length=64, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(name="payment_amount_positive", condition=Q(amount__gt=0))]


class Note(models.Model):
    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(_("note"))
    created_at = models.DateTimeField(auto_now_add=True)


class Callback(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        DONE = "done", _("Done")
        CANCELLED = "cancelled", _("Cancelled")

    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="callbacks")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="callbacks")
    due_at = models.DateTimeField(_("callback time"))
    channel = models.CharField(max_length=10, choices=ContactAttempt.Channel.choices, default="call")
    note = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SCHEDULED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["agent", "status", "due_at"])]


class PlacementBatch(models.Model):
    """One uploaded file of accounts (placement) or of references to take back (recall)."""

    class Kind(models.TextChoices):
        PLACEMENT = "placement", _("Placement")
        RECALL = "recall", _("Recall")

    class Mode(models.TextChoices):
        PARTIAL = "partial", _("Apply valid rows, report the rest")
        ALL_OR_NOTHING = "all_or_nothing", _("Apply nothing if any row fails")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        PROCESSING = "processing", _("Processing")
        APPLYING = "applying", _("Applying")
        APPLIED = "applied", _("Applied")
        REJECTED = "rejected", _("Rejected")
        FAILED = "failed", _("Failed")

    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="batches")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PLACEMENT)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.PARTIAL)
    file = models.FileField(upload_to="placements/%Y/%m/")
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    encoding = models.CharField(max_length=20, blank=True, help_text=_("Empty = detect"))
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True)
    options = models.JSONField(default=dict, blank=True, help_text="column mapping, header row, etc. used for this file")
    report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched with every progress update: a running batch whose heartbeat is old has lost its worker
    # (see cases.importers.dispatch.placement_batches_sweep).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    requeue_count = models.PositiveSmallIntegerField(default=0, help_text="times the sweep re-queued it")


class PlacementBatchPart(models.Model):
    """One share of a large batch, applied in its own transaction (see cases/importers/pipelines/postgres.py).

    Written in the same transaction as the rows it applied, so a batch interrupted between shares
    is resumed by processing it again: the shares recorded here are skipped.
    """

    batch = models.ForeignKey(PlacementBatch, on_delete=models.CASCADE, related_name="parts")
    part = models.PositiveSmallIntegerField()
    parts = models.PositiveSmallIntegerField(help_text="how many shares the batch was split into")
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    applied_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "part"], name="uniq_placement_batch_part")]


class PlacementRowError(models.Model):
    batch = models.ForeignKey(PlacementBatch, on_delete=models.CASCADE, related_name="row_errors")
    line = models.PositiveIntegerField()
    column = models.CharField(max_length=100, blank=True)
    reason = models.CharField(max_length=500)
    # So the lender can find the row and see what was wrong without opening the file (issue 12).
    external_ref = models.CharField(max_length=64, blank=True)
    value = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["batch", "line"]


class ColumnMapping(models.Model):
    """A lender's own header names mapped to the canonical columns."""

    lender = models.OneToOneField(Lender, on_delete=models.CASCADE, related_name="column_mapping")
    mapping = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)


class PlacementJob(models.Model):
    """Outbox row for a placement batch's processing job, written in the transaction that creates (or
    re-queues) the batch, and handed to the broker after commit or by the sweep: a broker outage
    delays the job, it never loses it nor fails the upload (cases/importers/dispatch.py)."""

    batch = models.ForeignKey(PlacementBatch, on_delete=models.CASCADE, related_name="jobs")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [models.Index(fields=["created_at"], condition=Q(sent_at__isnull=True), name="placement_job_unsent")]
