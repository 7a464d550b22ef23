"""Money on accounts: balance parts, allocation orders (versioned per lender), payment allocations and reversals.

The cases app keeps one ``OverdueAccount.balance``; here it is split into parts. The parts always add up to
the account's balance (``finance.services`` keeps them in step), and for every account
``parts + allocated amounts of payments not reversed == placed parts`` (tests/finance/test_properties.py).
"""

from __future__ import annotations

from decimal import ROUND_UP, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cases.models import CURRENCIES, Lender, OverdueAccount, Payment, PromiseToPay

PARTS = ("costs", "fees", "interest", "principal")
ZERO = Decimal("0.00")


def _money(verbose_name, **kwargs):
    return models.DecimalField(verbose_name, max_digits=14, decimal_places=2, default=ZERO, **kwargs)


class AllocationOrder(models.Model):
    """The order in which a lender's payments pay the balance parts. Versioned: a payment uses the version in
    force when it is recorded, and keeps the order it used (``PaymentAllocation.order``)."""

    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="+", verbose_name=_("lender"))
    version = models.PositiveIntegerField(_("version"))
    order = models.JSONField(_("allocation order"), help_text=_("A list of costs, fees, interest and principal."))
    effective_from = models.DateTimeField(_("effective from"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("allocation order")
        verbose_name_plural = _("allocation orders")
        constraints = [models.UniqueConstraint(fields=["lender", "version"], name="uniq_allocation_order_version")]

    def __str__(self) -> str:
        return f"{self.lender_id} v{self.version}: {' > '.join(self.order or [])}"

    def clean(self):
        if not isinstance(self.order, list) or sorted(self.order) != sorted(PARTS):
            raise ValidationError({"order": _("The order must name each of costs, fees, interest and principal once.")})


class AccountBalance(models.Model):
    """An account's balance in parts. Created on first use with the whole balance as principal (old data)."""

    account = models.OneToOneField(OverdueAccount, on_delete=models.PROTECT, primary_key=True,
                                   related_name="balance_parts")
    currency = models.CharField(max_length=3, choices=CURRENCIES)
    principal = _money(_("principal"))
    interest = _money(_("interest"))
    fees = _money(_("fees"))
    costs = _money(_("costs"))
    # The parts as placed (plus any later change of the lender's balance): the invariant's right-hand side.
    placed_principal = _money(_("placed principal"))
    placed_interest = _money(_("placed interest"))
    placed_fees = _money(_("placed fees"))
    placed_costs = _money(_("placed costs"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("account balance")
        verbose_name_plural = _("account balances")
        constraints = [
            models.CheckConstraint(
                name="account_balance_parts_non_negative",
                condition=Q(principal__gte=0, interest__gte=0, fees__gte=0, costs__gte=0),
            )
        ]

    @property
    def total(self) -> Decimal:
        return sum((getattr(self, p) for p in PARTS), ZERO)

    def parts(self) -> dict[str, Decimal]:
        return {p: getattr(self, p) for p in PARTS}


class PaymentAllocation(models.Model):
    """How one payment was applied: to the parts, the open promise and the plan's instalments.

    Kept so that a reversal undoes exactly what the payment did. ``external_ref`` is the reference a lender or a
    payment provider reported the payment under; unique per lender, it makes reporting a payment idempotent.
    """

    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, primary_key=True, related_name="allocation")
    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="+", db_index=False)
    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="+")
    currency = models.CharField(max_length=3, choices=CURRENCIES)
    amount = _money(_("amount"))
    principal = _money(_("principal"))
    interest = _money(_("interest"))
    fees = _money(_("fees"))
    costs = _money(_("costs"))
    unapplied = _money(_("unapplied"), help_text=_("Paid beyond the balance."))
    order = models.JSONField(default=list)
    order_version = models.PositiveIntegerField(default=0, help_text=_("0 = the platform default order"))
    promise = models.ForeignKey(PromiseToPay, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    promise_credit = _money(_("credited to the promise"))
    instalments = models.JSONField(default=list, blank=True)  # [{"instalment_id", "applied"}]
    plan_completed = models.BooleanField(default=False)
    external_ref = models.CharField(_("external reference"), max_length=64, blank=True)
    source = models.CharField(_("source"), max_length=20, default="agent")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("payment allocation")
        verbose_name_plural = _("payment allocations")
        constraints = [
            models.UniqueConstraint(fields=["lender", "external_ref"], condition=~Q(external_ref=""),
                                    name="uniq_payment_external_ref"),
            # Exact on PostgreSQL (numeric); the embedded SQLite run compares decimals as floats, so the
            # check allows less than half a cent either way, which still catches any real mismatch.
            models.CheckConstraint(
                name="allocation_adds_up",
                condition=Q(amount__gt=models.F("principal") + models.F("interest") + models.F("fees")
                            + models.F("costs") + models.F("unapplied") - Decimal("0.005"))
                & Q(amount__lt=models.F("principal") + models.F("interest") + models.F("fees")
                    + models.F("costs") + models.F("unapplied") + Decimal("0.005")),
            ),
        ]
        # Statements sum a lender's allocations by the time they were recorded.
        indexes = [models.Index(fields=["lender", "created_at"], name="allocation_lender_time_idx")]

    @property
    def allocated(self) -> Decimal:
        return sum((getattr(self, p) for p in PARTS), ZERO)


class PaymentReversal(models.Model):
    """A payment that did not stick (bounced, charged back, recorded in error). One per payment: idempotent."""

    class Reason(models.TextChoices):
        BOUNCED = "bounced", _("Bounced")
        CHARGEBACK = "chargeback", _("Charged back")
        ERROR = "error", _("Recorded in error")

    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, primary_key=True, related_name="reversal")
    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="+", db_index=False)
    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="+")
    amount = _money(_("amount"))
    currency = models.CharField(max_length=3, choices=CURRENCIES)
    reason = models.CharField(_("reason"), max_length=12, choices=Reason.choices)
    note = models.CharField(_("note"), max_length=500, blank=True)
    undone = models.JSONField(default=dict, blank=True)
    reversed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    reversed_at = models.DateTimeField(_("reversed at"), auto_now_add=True)

    class Meta:
        verbose_name = _("payment reversal")
        verbose_name_plural = _("payment reversals")
        indexes = [models.Index(fields=["lender", "reversed_at"], name="reversal_lender_time_idx")]


class SettlementRule(models.Model):
    """A lender's settlement terms, versioned: the least share of the balance an offer may be for without a
    supervisor's approval, by days-past-due bucket, and the most instalments a settlement may have."""

    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="+", verbose_name=_("lender"))
    version = models.PositiveIntegerField(_("version"))
    effective_from = models.DateTimeField(_("effective from"))
    min_percent = models.JSONField(_("minimum percent by bucket"), default=dict, blank=True,
                                   help_text=_('For example {"M1": 90, "M3": 70}.'))
    default_min_percent = models.DecimalField(_("minimum percent otherwise"), max_digits=5, decimal_places=2)
    max_instalments = models.PositiveSmallIntegerField(_("maximum instalments"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("settlement rule")
        verbose_name_plural = _("settlement rules")
        constraints = [models.UniqueConstraint(fields=["lender", "version"], name="uniq_settlement_rule_version")]


def settlement_floor(*, balance: Decimal, percent: Decimal) -> Decimal:
    """The least a settlement may be without approval: ``percent`` of ``balance``, rounded up to the cent
    (rounding down would let an offer one cent under the floor pass)."""
    return (balance * percent / 100).quantize(Decimal("0.01"), rounding=ROUND_UP)


class Settlement(models.Model):
    """An offer to close an account for less than its balance. Paid in full, the account is settled and the
    remainder written off.

    Made two ways: an agent's settlement offer (its plan is made when it is approved), or a repayment plan for less
    than the balance (``plan`` is that plan from the start: active when approved, cancelled when declined). A newer
    plan on the account withdraws the open settlement it supersedes."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting approval")
        APPROVED = "approved", _("Approved")
        DECLINED = "declined", _("Declined")
        SETTLED = "settled", _("Settled")
        WITHDRAWN = "withdrawn", _("Withdrawn (replaced by a newer plan)")

    OPEN = ("pending", "approved")

    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="+", db_index=False)
    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="settlements")
    amount = _money(_("settlement amount"))
    currency = models.CharField(max_length=3, choices=CURRENCIES)
    balance_at_offer = _money(_("balance at offer"))
    percent = models.DecimalField(_("percent of balance"), max_digits=6, decimal_places=2)
    bucket = models.CharField(_("bucket"), max_length=4)
    floor_percent = models.DecimalField(_("floor percent"), max_digits=5, decimal_places=2)
    rule_version = models.PositiveIntegerField(default=0, help_text=_("0 = the platform default rules"))
    max_instalments = models.PositiveSmallIntegerField(_("maximum instalments"), null=True, blank=True)
    instalments = models.JSONField(default=list)  # [{"due_date", "amount"}]
    needs_approval = models.BooleanField(default=False)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    offered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    offered_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    plan = models.ForeignKey("cases.RepaymentPlan", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    settled_at = models.DateTimeField(null=True, blank=True)
    settling_payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    written_off = _money(_("written off"))
    written_off_parts = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("settlement")
        verbose_name_plural = _("settlements")
        constraints = [
            # One waiting for approval and one approved (being paid) at most: a plan for less than the balance
            # that waits for a supervisor leaves the account's approved settlement and its plan in force.
            models.UniqueConstraint(fields=["account"], condition=Q(status="pending"),
                                    name="uniq_pending_settlement_per_account"),
            models.UniqueConstraint(fields=["account"], condition=Q(status="approved"),
                                    name="uniq_approved_settlement_per_account"),
            models.CheckConstraint(name="settlement_amount_positive", condition=Q(amount__gt=0)),
        ]
        indexes = [models.Index(fields=["status"], condition=Q(status="pending"), name="settlement_pending_idx")]

    @property
    def floor_amount(self) -> Decimal:
        return settlement_floor(balance=self.balance_at_offer, percent=self.floor_percent)

    @property
    def below_floor(self) -> bool:
        return self.amount < self.floor_amount

    @property
    def over_max_instalments(self) -> bool:
        return self.max_instalments is not None and len(self.instalments or []) > self.max_instalments


class SettlementEntry(models.Model):
    """A settlement reported to the lender: settled (``written_off`` the remainder written off) or reopened because
    the payment that settled it was reversed (``written_off`` negative: the write-off restored). Append-only and
    stamped when recorded, like ``CommissionEntry``: a ``Settlement`` row changes when it is reopened (and may be
    settled again), so statements read these rows instead, and an issued statement never changes."""

    class Kind(models.TextChoices):
        SETTLED = "settled", _("Settled")
        REOPENED = "reopened", _("Reopened")

    settlement = models.ForeignKey(Settlement, on_delete=models.PROTECT, related_name="entries")
    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="+", db_index=False)
    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                help_text=_("The payment that settled it (settled) or whose reversal reopened it."))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    currency = models.CharField(max_length=3, choices=CURRENCIES)
    amount = _money(_("settlement amount"))
    written_off = _money(_("written off"))
    created_at = models.DateTimeField(_("recorded at"), default=timezone.now)

    class Meta:
        verbose_name = _("settlement entry")
        verbose_name_plural = _("settlement entries")
        constraints = [
            models.CheckConstraint(name="settlement_entry_sign", condition=Q(kind="settled", written_off__gte=0)
                                   | Q(kind="reopened", written_off__lte=0)),
        ]
        # Statements sum a lender's settlements by the time they were settled or reopened (recorded).
        indexes = [models.Index(fields=["lender", "created_at"], name="settle_entry_lender_time_idx")]


class CommissionPlan(models.Model):
    """What the platform earns from a lender, versioned with effective dates: a percentage of the amounts
    collected, by the account's bucket at placement, and an optional flat fee per account (earned once, with the
    account's first payment). ``remit_net``: statements pay the lender net of commission (else gross)."""

    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="+", verbose_name=_("lender"))
    version = models.PositiveIntegerField(_("version"))
    effective_from = models.DateTimeField(_("effective from"))
    percent_by_bucket = models.JSONField(_("percent by bucket at placement"), default=dict, blank=True)
    default_percent = models.DecimalField(_("percent otherwise"), max_digits=5, decimal_places=2, default=ZERO)
    flat_fee = _money(_("flat fee per account"))
    remit_net = models.BooleanField(_("remit net of commission"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("commission plan")
        verbose_name_plural = _("commission plans")
        constraints = [models.UniqueConstraint(fields=["lender", "version"], name="uniq_commission_plan_version")]


class CommissionEntry(models.Model):
    """Commission earned on one payment, or taken back when it is reversed (negative amounts). Append-only, so an
    issued statement never changes: a reversal after it lands in the next one."""

    class Kind(models.TextChoices):
        EARNED = "earned", _("Earned")
        REVERSED = "reversed", _("Reversed")

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="+")
    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="+", db_index=False)
    account = models.ForeignKey(OverdueAccount, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    currency = models.CharField(max_length=3, choices=CURRENCIES)
    base = models.DecimalField(max_digits=14, decimal_places=2)
    percent = models.DecimalField(max_digits=5, decimal_places=2)
    bucket = models.CharField(max_length=4)
    plan_version = models.PositiveIntegerField(default=0)
    commission = models.DecimalField(max_digits=14, decimal_places=2)
    flat_fee = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("commission entry")
        verbose_name_plural = _("commission entries")
        constraints = [models.UniqueConstraint(fields=["payment", "kind"], name="uniq_commission_payment_kind")]
        indexes = [models.Index(fields=["lender", "created_at"], name="commission_lender_time_idx")]

    @property
    def total(self) -> Decimal:
        return self.commission + self.flat_fee


class Statement(models.Model):
    """A remittance statement: one lender, one currency, one period ``[period_start, period_end)`` of recorded
    time. Periods of a lender follow one another without gap or overlap, and the rows they cover are
    append-only and stamped when recorded, so an issued statement is frozen: anything recorded later (a late
    payment, a reversal, commission taken back, a settlement settled or reopened) lands in the next period."""

    class Kind(models.TextChoices):
        MONTH = "month", _("Month")
        ON_DEMAND = "on_demand", _("On demand")

    lender = models.ForeignKey(Lender, on_delete=models.PROTECT, related_name="+", db_index=False)
    currency = models.CharField(max_length=3, choices=CURRENCIES)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    label = models.CharField(_("period"), max_length=40)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    remit_net = models.BooleanField(_("net of commission"))
    payments_count = models.PositiveIntegerField(default=0)
    payments_total = _money(_("payments"))
    reversals_count = models.PositiveIntegerField(default=0)
    reversals_total = _money(_("reversals"))
    commission_total = _money(_("commission"))
    # Settlements settled (and reopened) in the period and the net amount written off: reported to the lender,
    # not money due to it (``amount_due`` does not include them).
    settlements_count = models.PositiveIntegerField(_("settlements settled"), default=0)
    settlements_reopened_count = models.PositiveIntegerField(_("settlements reopened"), default=0)
    written_off_total = _money(_("written off (settlements)"))
    amount_due = models.DecimalField(_("amount due to the lender"), max_digits=14, decimal_places=2)
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")
    issued_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("remittance statement")
        verbose_name_plural = _("remittance statements")
        constraints = [
            models.UniqueConstraint(fields=["lender", "currency", "period_end"], name="uniq_statement_period"),
            models.CheckConstraint(name="statement_period_ordered", condition=Q(period_end__gt=models.F("period_start"))),
        ]
        indexes = [models.Index(fields=["lender", "-period_end"], name="statement_lender_end_idx")]
