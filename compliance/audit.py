"""Writing and verifying the hash-chained audit log.

Chains: one per lender (``chain = lender_id``), plus chain 0 for events with no lender
(logins, policy changes). Per-lender chains keep appends of different lenders from
serialising on one lock while still letting ``audit_verify`` prove each chain whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from .models import AuditChainHead, AuditEvent, AuditVerification

GENESIS = "0" * 64
SECRET_KEYS = {"password", "token", "secret", "national_id", "api_key"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            str(k): ("***" if str(k).lower() in SECRET_KEYS and v else _jsonable(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: AuditEvent) -> str:
    fields = {
        "chain": event.chain,
        "seq": event.seq,
        "created_at": event.created_at.astimezone(UTC).isoformat(),
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "lender_id": event.lender_id,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "account_id": event.account_id,
        "borrower_id": event.borrower_id,
        "data": event.data,
        "policy_code": event.policy_code,
        "policy_version": event.policy_version,
        "prev_hash": event.prev_hash,
    }
    return hashlib.sha256(_canonical(fields)).hexdigest()


def audit_log(
    *,
    action: str,
    actor=None,
    lender_id: int | None = None,
    subject: models.Model | None = None,
    account_id: int | None = None,
    borrower_id: int | None = None,
    data: dict | None = None,
    policy_code: str = "",
    policy_version: int | None = None,
    actor_label: str = "",
) -> AuditEvent:
    """Append one event. Call inside the caller's transaction so the event and the change commit together."""
    with transaction.atomic():
        chain = lender_id or 0
        AuditChainHead.objects.get_or_create(chain=chain)
        head = AuditChainHead.objects.select_for_update().get(chain=chain)
        user = actor if getattr(actor, "is_authenticated", False) else None
        event = AuditEvent(
            chain=chain,
            seq=head.seq + 1,
            created_at=timezone.now(),
            actor=user,
            actor_label=actor_label or (user.get_username() if user else "system"),
            lender_id=lender_id,
            action=action,
            subject_type=subject._meta.label_lower if subject is not None else "",
            subject_id=str(subject.pk) if subject is not None else "",
            account_id=account_id,
            borrower_id=borrower_id,
            # Round-trip through JSON so the hash is computed over exactly what the database returns.
            data=json.loads(_canonical(_jsonable(data or {}))),
            policy_code=policy_code,
            policy_version=policy_version,
            prev_hash=head.hash,
        )
        event.hash = event_hash(event)
        event.save()
        AuditChainHead.objects.filter(chain=chain).update(seq=event.seq, hash=event.hash)
        return event


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    detail: str = ""


def _events(chain: int, batch: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = list(AuditEvent.objects.filter(chain=chain, seq__gt=last).order_by("seq")[:batch])
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def audit_verify(*, batch: int = 5000, record: bool = True) -> VerifyResult:
    """Walk every chain in order and report the first broken link."""
    checked = 0
    result = VerifyResult(ok=True, checked=0)
    heads = {h.chain: h for h in AuditChainHead.objects.all()}
    chains = sorted(set(AuditEvent.objects.values_list("chain", flat=True).distinct()) | set(heads))
    for chain in chains:
        prev, expected_seq = GENESIS, 1
        for ev in _events(chain, batch):
            checked += 1
            problem = ""
            if ev.seq != expected_seq:
                problem = f"chain {chain}: expected seq {expected_seq}, found {ev.seq} (event deleted?)"
            elif ev.prev_hash != prev:
                problem = f"chain {chain} seq {ev.seq}: prev_hash does not match the previous event"
            elif event_hash(ev) != ev.hash:
                problem = f"chain {chain} seq {ev.seq}: content does not match its hash (event altered)"
            if problem:
                result = VerifyResult(ok=False, checked=checked, first_broken_id=ev.id, detail=problem)
                break
            prev, expected_seq = ev.hash, expected_seq + 1
        else:
            head = heads.get(chain)
            if head and (head.seq != expected_seq - 1 or head.hash != prev):
                result = VerifyResult(
                    ok=False, checked=checked, detail=f"chain {chain}: last events missing (head at seq {head.seq})"
                )
        if not result.ok:
            break
    result.checked = checked
    if record:
        AuditVerification.objects.create(
            ok=result.ok, events_checked=checked, first_broken_id=result.first_broken_id, detail=result.detail
        )
    return result
