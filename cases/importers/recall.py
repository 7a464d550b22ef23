"""Recall by API: a short list of references taken back from collection at once (audited one by one)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from cases.models import Lender, OverdueAccount, User

from .pipelines.base import RECALL_SKIP, accounts_recall_apply

MAX_RECALL_REFS = 1000


def accounts_recall(*, actor: User, refs: list[str], reason: str = "") -> dict:
    """Take accounts back from collection now: status "recalled", unassigned, audited one by one."""
    lender = actor.lender if actor.is_lender_user else None
    if lender is None or lender.status != Lender.Status.ACTIVE:
        raise PermissionDenied(_("Only users of an active lender recall accounts."))
    refs = [str(r).strip() for r in refs if str(r).strip()]
    if not refs:
        raise ValidationError({"external_refs": _("Give at least one external reference.")})
    if len(refs) > MAX_RECALL_REFS:
        raise ValidationError({"external_refs": _("At most %(n)s references per request; upload a recall file for more.") % {"n": MAX_RECALL_REFS}})
    with transaction.atomic():
        # Locked in primary-key order, as every writer of several accounts does: two requests over
        # overlapping references then queue instead of deadlocking.
        accounts = list(OverdueAccount.objects.select_for_update().filter(lender=lender, external_ref__in=refs)
                        .order_by("pk"))
        recalled = [a for a in accounts if a.status not in RECALL_SKIP]
        accounts_recall_apply(lender_id=lender.pk, batch_id=None, accounts=recalled,
                              reasons=dict.fromkeys(refs, reason[:500]), actor=actor)
    known = {a.external_ref for a in accounts}
    return {
        "recalled": sorted(a.external_ref for a in recalled),
        "unchanged": sorted(a.external_ref for a in accounts if a.status in RECALL_SKIP),
        "unknown": sorted(r for r in set(refs) if r not in known),
    }
