"""Writes of the compliance app: policy drafting/publishing (each audited)."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from . import rules
from .audit import audit_log
from .models import Incident, Policy
from .selectors import decision_as_dict

HOLD_FIELDS = ("cease", "dispute", "attorney", "bankruptcy", "deceased")


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
            raise ValidationError(_("This version is already published."))
        now = timezone.now()
        requested = policy.effective_from
        # Never in force before it was published: outreach already made stays judged by the rules then in force.
        policy.effective_from = max(requested, now)
        policy.status = Policy.Status.PUBLISHED
        policy.published_at = now
        policy.published_by = actor
        policy.save(update_fields=["status", "published_at", "published_by", "effective_from"])
        audit_log(
            action="compliance.policy.published", actor=actor, subject=policy,
            data={"code": policy.code, "version": policy.version, "effective_from": policy.effective_from,
                  "requested_effective_from": requested},
            policy_code=policy.code, policy_version=policy.version,
        )
        return policy


# ---------------------------------------------------------------------------------------------
# Incidents: contacts that happened and broke a rule (stored as breaches, reviewed by supervisors)


def incident_open(*, attempt, actor, decision: rules.Decision) -> Incident:
    """Called by the outreach write path, inside its transaction, for an attempt stored as a breach."""
    incident = Incident(
        lender_id=attempt.lender_id, borrower_id=attempt.borrower_id, account_id=attempt.account_id,
        attempt_id=attempt.pk, occurred_at=attempt.occurred_at, channel=attempt.channel,
        agent=actor if getattr(actor, "is_authenticated", False) else None,
        violations=decision_as_dict(decision)["violations"],
        policy_code=decision.policy_code, policy_version=decision.policy_version,
    )
    incident.full_clean()
    incident.save()
    audit_log(
        action="compliance.incident.opened", actor=actor, lender_id=attempt.lender_id, subject=incident,
        account_id=attempt.account_id, borrower_id=attempt.borrower_id,
        policy_code=decision.policy_code, policy_version=decision.policy_version,
        data={"attempt_id": attempt.pk, "codes": [v.code for v in decision.violations]},
    )
    return incident


def incident_review(*, actor, incident: Incident, status: str, resolution: str = "") -> Incident:
    """A supervisor acknowledges or closes an incident (closing needs a written resolution)."""
    from django.utils.translation import gettext as _

    if status not in (Incident.Status.ACKNOWLEDGED, Incident.Status.CLOSED):
        raise ValidationError({"status": _("Choose acknowledged or closed.")})
    if status == Incident.Status.CLOSED and not resolution.strip():
        raise ValidationError({"resolution": _("Say what was done before closing the incident.")})
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if incident.status == Incident.Status.CLOSED:
            raise ValidationError({"status": _("This incident is already closed.")})
        before = incident.status
        incident.status = status
        incident.reviewed_by = actor
        incident.reviewed_at = timezone.now()
        incident.resolution = resolution.strip()[:4000]
        incident.save(update_fields=["status", "reviewed_by", "reviewed_at", "resolution"])
        audit_log(
            action="compliance.incident.reviewed", actor=actor, lender_id=incident.lender_id, subject=incident,
            account_id=incident.account_id, borrower_id=incident.borrower_id,
            data={"from": before, "to": status, "reason": incident.resolution[:500]},
        )
        return incident
