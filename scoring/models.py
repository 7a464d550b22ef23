"""Propensity-to-pay scores, the model versions that produced them, and collection strategies.

Model parameters are stored as JSON (scaler, coefficients, calibration), not as a pickle: a
version can be read, compared and audited, and loading it never executes stored code.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class ScoreModel(models.Model):
    """One version of the propensity-to-pay model (or of the transparent rule score)."""

    class Kind(models.TextChoices):
        RULES = "rules", _("Rule-based (cold start)")
        LOGISTIC = "logistic", _("Logistic regression, calibrated")

    class Status(models.TextChoices):
        CANDIDATE = "candidate", _("Candidate")
        PROMOTED = "promoted", _("In use")
        RETIRED = "retired", _("Retired")

    version = models.PositiveIntegerField(unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CANDIDATE)
    features = models.JSONField(default=list, help_text="feature names, in the order of the coefficients")
    params = models.JSONField(default=dict, help_text="scaler means/scales, coefficients, intercept, calibration")
    metrics = models.JSONField(default=dict, help_text="AUC, Brier, baseline AUC, calibration table, counts")
    # Lenders with enough labelled outcomes in the training data; the others get the rule score.
    lenders = models.JSONField(default=list)
    trained_from = models.DateTimeField(null=True, blank=True)
    trained_to = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="promoted"), name="one_promoted_score_model"),
        ]

    def __str__(self) -> str:
        return f"v{self.version} ({self.kind})"


class AccountScore(models.Model):
    """The latest score of an account (one row per account, replaced on every refresh)."""

    account = models.OneToOneField("cases.OverdueAccount", primary_key=True, on_delete=models.CASCADE,
                                   related_name="score")
    lender_id = models.BigIntegerField()
    # No index on model (versions are never deleted) and none but the key: the daily refresh rewrites
    # every row, and with one index PostgreSQL can update in place (HOT, see migration 0003).
    model = models.ForeignKey(ScoreModel, on_delete=models.PROTECT, related_name="+", db_index=False)
    method = models.CharField(max_length=10, help_text="rules or model: which score this account got")
    probability = models.FloatField(help_text="calibrated probability of a payment within the horizon")
    expected_recovery = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    reasons = models.JSONField(default=list, help_text="top reasons: feature, effect (+/-) and the values shown")
    scored_at = models.DateTimeField()


class Strategy(models.Model):
    """One version of a collection strategy: which channel when, by bucket and score band (JSON data)."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")

    code = models.SlugField(max_length=40)
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    effective_from = models.DateTimeField(_("effective from"))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    rules = models.JSONField(help_text="read by scoring.strategy.StrategySpec.from_dict")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code", "-version"]
        constraints = [models.UniqueConstraint(fields=["code", "version"], name="uniq_strategy_version")]

    def __str__(self) -> str:
        return f"{self.code} v{self.version}"


class Experiment(models.Model):
    """Champion/challenger for one lender: accounts split by a stable hash of (seed, account id)."""

    lender = models.OneToOneField("cases.Lender", on_delete=models.CASCADE, related_name="strategy_experiment")
    champion = models.SlugField(max_length=40, help_text="strategy code")
    challenger = models.SlugField(max_length=40, blank=True, help_text="strategy code; empty = no challenger")
    challenger_share = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.200"))
    holdout_share = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.100"))
    seed = models.CharField(max_length=40, default="2026")
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="experiment_shares_valid",
                condition=Q(challenger_share__gte=0) & Q(holdout_share__gte=0) & Q(holdout_share__lte=Decimal("0.5"))
                & Q(challenger_share__lte=Decimal("0.9")),
            ),
        ]


class StrategyStepRun(models.Model):
    """One strategy step executed (or refused) for one account: makes the daily run idempotent."""

    class State(models.TextChoices):
        DONE = "done", _("Done")
        REFUSED = "refused", _("Refused by the compliance check")
        AGENT = "agent", _("Left to the agent")
        SKIPPED = "skipped", _("Skipped")

    account = models.ForeignKey("cases.OverdueAccount", on_delete=models.CASCADE, related_name="+")
    lender_id = models.BigIntegerField()
    strategy_code = models.SlugField(max_length=40)
    strategy_version = models.PositiveIntegerField()
    arm = models.CharField(max_length=12)
    step = models.PositiveSmallIntegerField()
    channel = models.CharField(max_length=10)
    state = models.CharField(max_length=10, choices=State.choices)
    detail = models.JSONField(default=dict, blank=True)
    ran_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "strategy_code", "strategy_version", "step"],
                                    name="uniq_strategy_step_run"),
        ]
        indexes = [models.Index(fields=["lender_id", "arm"])]
