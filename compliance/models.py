"""Contact policies (versioned data) and the append-only, hash-chained audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Policy(models.Model):
    """One version of a jurisdiction's contact rules, stored as data for ``compliance.rules``."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")

    code = models.CharField(_("jurisdiction"), max_length=10)
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    effective_from = models.DateTimeField(_("effective from"))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    rules = models.JSONField(help_text=_("Policy data as read by compliance.rules.Policy.from_dict"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["code", "-version"]
        verbose_name = _("contact policy")
        verbose_name_plural = _("contact policies")
        constraints = [models.UniqueConstraint(fields=["code", "version"], name="uniq_policy_version")]

    def __str__(self) -> str:
        return f"{self.code} v{self.version}"


class AuditEvent(models.Model):
    """Append-only. Each row carries the hash of the previous row of its chain (one chain per lender).

    On PostgreSQL a trigger refuses UPDATE and DELETE; ``manage.py audit_verify`` recomputes the chains.
    """

    chain = models.PositiveBigIntegerField(help_text="lender id, or 0 for events without a lender")
    seq = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    actor_label = models.CharField(max_length=150, blank=True)
    lender_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    subject_type = models.CharField(max_length=50, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)
    account_id = models.BigIntegerField(null=True, blank=True)
    borrower_id = models.BigIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict)
    policy_code = models.CharField(max_length=10, blank=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["chain", "seq"], name="uniq_audit_chain_seq")]
        indexes = [
            models.Index(fields=["account_id", "created_at"]),
            models.Index(fields=["lender_id", "created_at"]),
            models.Index(fields=["actor", "created_at"]),
        ]

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise RuntimeError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("audit events are append-only")


class AuditChainHead(models.Model):
    """The last link of each chain; its row lock serialises appends to one chain."""

    chain = models.PositiveBigIntegerField(primary_key=True)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)


class AuditVerification(models.Model):
    """Result of one run of audit_verify, shown in the supervisor console."""

    ran_at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField()
    events_checked = models.PositiveBigIntegerField()
    first_broken_id = models.BigIntegerField(null=True, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-ran_at"]


class Incident(models.Model):
    """A contact that happened and broke a rule (stored as a breach): an item for a supervisor.

    Plain ids rather than foreign keys: the compliance core does not depend on the cases app.
    """

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")
        CLOSED = "closed", _("Closed")

    created_at = models.DateTimeField(auto_now_add=True)
    lender_id = models.BigIntegerField()
    borrower_id = models.BigIntegerField()
    account_id = models.BigIntegerField()
    attempt_id = models.BigIntegerField(unique=True)
    occurred_at = models.DateTimeField(_("contact time"))
    channel = models.CharField(_("channel"), max_length=10)
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+", verbose_name=_("agent"))
    violations = models.JSONField(_("rules broken"), default=list)
    policy_code = models.CharField(max_length=10)
    policy_version = models.PositiveIntegerField()
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.OPEN)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(_("resolution"), blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("compliance incident")
        verbose_name_plural = _("compliance incidents")
        indexes = [models.Index(fields=["status", "created_at"]), models.Index(fields=["lender_id", "created_at"])]
