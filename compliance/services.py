"""Writes of the compliance app: policy drafting/publishing (each audited)."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from . import rules
from .audit import audit_log
from .models import Policy


def policy_draft_create(*, actor, code: str, data: dict, effective_from: datetime) -> Policy:
    with transaction.atomic():
        version = (Policy.objects.filter(code=code).aggregate(v=Max("version"))["v"] or 0) + 1
        payload = {**data, "code": code, "version": version}
        try:
            rules.Policy.from_dict(payload)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        row = Policy(
            code=code, version=version, name=data.get("name", code), effective_from=effective_from,
            rules=payload, created_by=actor,
        )
        row.full_clean()
        row.save()
        audit_log(action="compliance.policy.drafted", actor=actor, subject=row, data={"code": code, "version": version})
        return row


def policy_publish(*, actor, policy: Policy) -> Policy:
    with transaction.atomic():
        policy = Policy.objects.select_for_update().get(pk=policy.pk)
        if policy.status == Policy.Status.PUBLISHED:
            raise ValidationError("This version is already published.")
        policy.status = Policy.Status.PUBLISHED
        policy.published_at = timezone.now()
        policy.published_by = actor
        policy.save(update_fields=["status", "published_at", "published_by"])
        audit_log(
            action="compliance.policy.published", actor=actor, subject=policy,
            data={"code": policy.code, "version": policy.version, "effective_from": policy.effective_from},
            policy_code=policy.code, policy_version=policy.version,
        )
        return policy
