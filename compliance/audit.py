"""Writing and verifying the hash-chained audit log.

Chains: one per lender (``chain = lender_id``), plus chain 0 for events with no lender
(logins, policy changes). Per-lender chains keep appends of different lenders from
serialising on one lock while still letting ``audit_verify`` prove each chain whole.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
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


def jsonb_text(value: Any) -> str:
    """``value`` written exactly as PostgreSQL prints it as ``jsonb::text``.

    The hash covers ``data`` in this form so that verification on PostgreSQL can hash the text the
    database already produces, without decoding and re-encoding JSON per row (the costly part).
    jsonb orders object keys by their UTF-8 length, then bytewise; separates with ", " and ": ";
    prints numbers as ``numeric`` does (plain notation, scale kept) and escapes strings as JSON does.
    ``tests/compliance/test_audit.py`` compares this with the database on random values.
    """
    if isinstance(value, str):
        return _STR(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        return text[1:] if text.startswith("-") and Decimal(text) == 0 else text
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(f"{_STR(k)}: {jsonb_text(value[k])}" for k in keys) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    raise TypeError(f"not JSON data: {type(value).__name__}")


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: AuditEvent) -> str:
    return row_hash(event.chain, (
        event.id, event.seq, event.created_at, event.actor_id, event.actor_label, event.lender_id, event.action,
        event.subject_type, event.subject_id, event.account_id, event.borrower_id, event.data, event.policy_code,
        event.policy_version, event.prev_hash, event.hash,
    ))


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
    """Append one event. Call inside the caller's transaction so the event and the change commit together.

    The chain head stays locked until the caller's transaction ends, so appends to one chain (one
    lender) are serialised. On PostgreSQL the locked part is kept to two statements and no savepoint:
    lock and read the head, then insert the event and move the head in one statement (ids are still
    drawn under the lock, so id order stays seq order within a chain; see ``_verify_fast``).
    """
    from django.db import connection

    chain = lender_id or 0
    user = actor if getattr(actor, "is_authenticated", False) else None
    fields = {"lender_id": lender_id, "action": action, "subject": subject, "account_id": account_id,
              "borrower_id": borrower_id, "data": data, "policy_code": policy_code, "policy_version": policy_version}
    label = actor_label or (user.get_username() if user else "system")
    if connection.vendor != "postgresql":
        with transaction.atomic():
            AuditChainHead.objects.get_or_create(chain=chain)
            head = AuditChainHead.objects.select_for_update().get(chain=chain)
            event = _new_event(head, created=timezone.now(), user=user, label=label, e=fields)
            event.hash = event_hash(event)
            event.save()
            AuditChainHead.objects.filter(chain=chain).update(seq=event.seq, hash=event.hash)
            return event
    with transaction.atomic(savepoint=False), connection.cursor() as cur:
        head = _lock_head(cur, chain)
        event = _new_event(head, created=timezone.now(), user=user, label=label, e=fields)
        event.hash = event_hash(event)
        cur.execute(_APPEND_SQL, [
            event.chain, event.seq, event.created_at, event.actor_id, event.actor_label, event.lender_id, event.action,
            event.subject_type, event.subject_id, event.account_id, event.borrower_id, json.dumps(event.data),
            event.policy_code, event.policy_version, event.prev_hash, event.hash, event.seq, event.hash, chain,
        ])
        event.id = cur.fetchone()[0]
        event._state.adding, event._state.db = False, connection.alias
        return event


_APPEND_SQL = """
WITH e AS (
    INSERT INTO compliance_auditevent (chain, seq, created_at, actor_id, actor_label, lender_id, action, subject_type,
        subject_id, account_id, borrower_id, data, policy_code, policy_version, prev_hash, hash)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s) RETURNING id
)
UPDATE compliance_auditchainhead SET seq = %s, hash = %s WHERE chain = %s RETURNING (SELECT id FROM e)
"""


def _lock_head(cur, chain: int) -> AuditChainHead:
    """Lock ``chain``'s head row (created at the chain's first event) and return it as it is now."""
    sql = "SELECT seq, hash FROM compliance_auditchainhead WHERE chain = %s FOR UPDATE"
    cur.execute(sql, [chain])
    row = cur.fetchone()
    if row is None:
        cur.execute("INSERT INTO compliance_auditchainhead (chain, seq, hash) VALUES (%s, 0, %s) ON CONFLICT DO NOTHING",
                    [chain, GENESIS])
        cur.execute(sql, [chain])
        row = cur.fetchone()
    return AuditChainHead(chain=chain, seq=row[0], hash=row[1])


def _new_event(head: AuditChainHead, *, created, user, label: str, e: dict) -> AuditEvent:
    """The next event of ``head``'s chain (not saved, no hash yet) from ``audit_log``-style arguments."""
    subject = e.get("subject")
    return AuditEvent(
        chain=head.chain,
        seq=head.seq + 1,
        created_at=created,
        actor=user,
        actor_label=label,
        lender_id=e.get("lender_id"),
        action=e["action"],
        subject_type=subject._meta.label_lower if subject is not None else e.get("subject_type", ""),
        subject_id=str(subject.pk) if subject is not None else str(e.get("subject_id", "")),
        account_id=e.get("account_id"),
        borrower_id=e.get("borrower_id"),
        # Round-trip through JSON so the hash is computed over exactly what the database returns.
        data=json.loads(_canonical(_jsonable(e.get("data") or {}))),
        policy_code=e.get("policy_code", ""),
        policy_version=e.get("policy_version"),
        prev_hash=head.hash,
    )


def audit_log_many(*, events: list[dict], actor=None, actor_label: str = "", batch_size: int = 5000) -> int:
    """Append many events in a handful of queries (bulk jobs such as daily ageing).

    Each item of ``events`` takes the keyword arguments of ``audit_log`` except ``actor`` (shared),
    and may give ``subject_type``/``subject_id`` instead of a ``subject`` instance so callers need not
    load rows. Chains are extended in the given order; the heads of all chains involved are locked
    (in chain order, so two bulk writers cannot deadlock) for the caller's transaction.
    Queries: 2 to lock the heads, len(events)/batch_size inserts, 1 to move the heads.
    """
    if not events:
        return 0
    with transaction.atomic():
        chains = sorted({e.get("lender_id") or 0 for e in events})
        AuditChainHead.objects.bulk_create([AuditChainHead(chain=c) for c in chains], ignore_conflicts=True)
        heads = {h.chain: h for h in AuditChainHead.objects.select_for_update().filter(chain__in=chains).order_by("chain")}
        user = actor if getattr(actor, "is_authenticated", False) else None
        label = actor_label or (user.get_username() if user else "system")
        created = timezone.now()
        rows = []
        for e in events:
            head = heads[e.get("lender_id") or 0]
            event = _new_event(head, created=created, user=user, label=label, e=e)
            event.hash = event_hash(event)
            head.seq, head.hash = event.seq, event.hash
            rows.append(event)
        AuditEvent.objects.bulk_create(rows, batch_size=batch_size)
        AuditChainHead.objects.bulk_update(list(heads.values()), ["seq", "hash"], batch_size=batch_size)
        return len(rows)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    detail: str = ""


_STR = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses for str
_VERIFY_COLUMNS = (
    "id", "seq", "created_at", "actor_id", "actor_label", "lender_id", "action", "subject_type", "subject_id",
    "account_id", "borrower_id", "data", "policy_code", "policy_version", "prev_hash", "hash",
)


def _num(value: int | None) -> str:
    return "null" if value is None else str(value)


def row_hash(chain: int, row: tuple) -> str:
    """``event_hash`` computed from a raw ``_VERIFY_COLUMNS`` row, without building a model.

    The hashed text is a JSON object with its keys in sorted order and compact separators
    (ensure_ascii=False) whose ``data`` member is ``jsonb_text(data)``.
    """
    (_id, seq, created_at, actor_id, actor_label, lender_id, action, subject_type, subject_id,
     account_id, borrower_id, data, policy_code, policy_version, prev_hash, _hash) = row
    if isinstance(data, str):  # Django's PostgreSQL/SQLite cursors hand back JSON as text
        data = json.loads(data)
    if created_at.tzinfo is not UTC:
        created_at = created_at.astimezone(UTC) if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    text = "".join((
        '{"account_id":', _num(account_id),
        ',"action":', _STR(action),
        ',"actor_id":', _num(actor_id),
        ',"actor_label":', _STR(actor_label),
        ',"borrower_id":', _num(borrower_id),
        ',"chain":', str(chain),
        ',"created_at":"', created_at.isoformat(),
        '","data":', jsonb_text(data),
        ',"lender_id":', _num(lender_id),
        ',"policy_code":', _STR(policy_code),
        ',"policy_version":', _num(policy_version),
        ',"prev_hash":', _STR(prev_hash),
        ',"seq":', str(seq),
        ',"subject_id":', _STR(subject_id),
        ',"subject_type":', _STR(subject_type),
        "}",
    ))
    return hashlib.sha256(text.encode()).hexdigest()


def _rows(chain: int, batch: int) -> Iterator[tuple]:
    """Raw tuples of one chain in seq order, fetched in keyset batches (no model instances)."""
    from django.db import connection

    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    sql = (
        f"SELECT {', '.join(_VERIFY_COLUMNS)} FROM {table} WHERE chain = %s AND seq > %s ORDER BY seq LIMIT %s"
    )
    last = 0
    with connection.cursor() as cur:
        while True:
            cur.execute(sql, [chain, last, batch])
            rows = cur.fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][1]


# --- Fast path (PostgreSQL): one pass in id order over COPY text, optionally in parallel ---------
#
# Within a chain, id order is seq order: ids are drawn while the chain head is locked (audit_log) or
# in list order by one bulk insert (audit_log_many). So a single scan in id order (the physical order
# of an append-only table) can check every chain at once, instead of one random-access index walk
# per chain. Any chain whose seq does not follow in id order (a gap from a deleted row, or rows
# restored out of order) is re-walked with the exact per-chain method above, which names the first
# broken link. Rows come from ``COPY (SELECT ...) TO STDOUT`` as text: integers are already JSON and
# ``data`` arrives as jsonb text, which is what the hash covers (see ``jsonb_text``). Large logs are
# split into id ranges verified by worker processes sharing one exported snapshot; the parent stitches
# the chains across ranges.

_COPY_CHUNK = 200_000  # ids per COPY statement (bounded memory)
_PARALLEL_MIN = 400_000  # below this many ids, worker start-up is not worth it
_COPY_ESC = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "v": "\v"}


def _copy_unescape(value: str) -> str:
    if "\\" not in value or value == "\\N":  # \N alone is COPY's NULL marker
        return value
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(_COPY_ESC.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _iso_utc(ts: str) -> str:
    """PostgreSQL's UTC timestamptz text ('2026-01-02 03:04:05.12+00') as datetime.isoformat()."""
    base = ts[:-3]
    if "." in base:
        head, frac = base.split(".")
        base = f"{head}.{frac.ljust(6, '0')}"
    return base.replace(" ", "T", 1) + "+00:00"


_TEMPLATE = (
    '{"account_id":%s,"action":%s,"actor_id":%s,"actor_label":%s,"borrower_id":%s,"chain":%s,"created_at":"%s",'
    '"data":%s,"lender_id":%s,"policy_code":%s,"policy_version":%s,"prev_hash":%s,"seq":%s,"subject_id":%s,'
    '"subject_type":%s}'
)


class _LineSink(io.TextIOBase):
    """File-like target for COPY TO: psycopg2 hands over each row whole, ending in a newline."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.whole_rows = True

    def write(self, chunk: str) -> int:  # type: ignore[override]
        if self.whole_rows and not chunk.endswith("\n"):
            self.whole_rows = False  # not row-aligned after all: the caller joins and re-splits
        self.lines.append(chunk)
        return len(chunk)


def _scan_range(cur, lo: int, hi: int, limits: dict[int, int]) -> dict:
    """Verify rows lo < id <= hi in id order. Returns counts, per-chain ends, anomalies, first problem."""
    sha, esc, template, iso = hashlib.sha256, _STR, _TEMPLATE, _iso_utc
    null = "\\N"
    ends: dict[int, list] = {}  # chain -> [first_id, first_seq, first_prev, last_seq, last_hash]
    anomalies: set[int] = set()
    checked = 0
    problem = None
    cols = ", ".join(("chain",) + _VERIFY_COLUMNS)
    start = lo
    while start < hi and problem is None:
        stop = min(hi, start + _COPY_CHUNK)
        sink = _LineSink()  # psycopg2 writes one row per write(): keep them as they come, no re-splitting
        cur.copy_expert(
            f"COPY (SELECT {cols} FROM compliance_auditevent WHERE id > {int(start)} AND id <= {int(stop)} ORDER BY id)"
            " TO STDOUT", sink)
        lines = sink.lines if sink.whole_rows else "".join(sink.lines).split("\n")
        del sink
        for line in lines:
            if line[-1:] == "\n":
                line = line[:-1]
            if not line:
                continue
            fields = line.split("\t")
            if "\\" in line and "\\" in line.replace(null, ""):
                fields = [_copy_unescape(v) for v in fields]
            (chain_s, id_s, seq_s, ts, actor, label, lender, action, st, sid, acc, bor, data, pc, pv, prev, h) = fields
            chain, seq = int(chain_s), int(seq_s)
            if limits.get(chain, seq) < seq:
                continue  # appended after the heads were read: next run's business
            if chain in anomalies:
                continue
            checked += 1
            end = ends.get(chain)
            if end is None:
                ends[chain] = [int(id_s), seq, prev, seq, h]
            elif seq != end[3] + 1:
                anomalies.add(chain)  # gap or out-of-order: the exact per-chain walk decides
                continue
            elif prev != end[4]:
                problem = (int(id_s), f"chain {chain} seq {seq}: prev_hash does not match the previous event")
                break
            text = template % (
                "null" if acc == null else acc, esc(action), "null" if actor == null else actor, esc(label),
                "null" if bor == null else bor, chain_s,
                ts[:10] + "T" + ts[11:26] + "+00:00" if len(ts) == 29 else iso(ts),
                data, "null" if lender == null else lender, esc(pc), "null" if pv == null else pv,
                esc(prev), seq_s, esc(sid), esc(st),
            )
            if sha(text.encode()).hexdigest() != h:
                problem = (int(id_s), f"chain {chain} seq {seq}: content does not match its hash (event altered)")
                break
            if end is not None:
                end[3], end[4] = seq, h
        start = stop
    return {"checked": checked, "ends": ends, "anomalies": anomalies, "problem": problem}


def _scan_worker(args: tuple) -> dict:
    params, snapshot, lo, hi, limits = args
    import psycopg2

    conn = psycopg2.connect(**params)
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur.execute("SET TRANSACTION SNAPSHOT %s", [snapshot])
            cur.execute("SET TIME ZONE 'UTC'")
            return _scan_range(cur, lo, hi, limits)
    finally:
        conn.close()


def _verify_chain_exact(chain: int, batch: int, head) -> VerifyResult:
    """The per-chain walk in seq order: slow (index order) but exact about the first broken link."""
    checked = 0
    prev, expected_seq = GENESIS, 1
    for row in _rows(chain, batch):
        seq = row[1]
        if head is not None and seq > head.seq and expected_seq > head.seq:
            break
        checked += 1
        problem = ""
        if seq != expected_seq:
            problem = f"chain {chain}: expected seq {expected_seq}, found {seq} (event deleted?)"
        elif row[14] != prev:
            problem = f"chain {chain} seq {seq}: prev_hash does not match the previous event"
        elif row_hash(chain, row) != row[15]:
            problem = f"chain {chain} seq {seq}: content does not match its hash (event altered)"
        if problem:
            return VerifyResult(ok=False, checked=checked, first_broken_id=row[0], detail=problem)
        prev, expected_seq = row[15], expected_seq + 1
    if head and (head.seq != expected_seq - 1 or head.hash != prev):
        return VerifyResult(ok=False, checked=checked, detail=f"chain {chain}: last events missing (head at seq {head.seq})")
    return VerifyResult(ok=True, checked=checked)


def _verify_fast(*, batch: int, workers: int | None) -> VerifyResult:
    from django.db import connection

    heads = {h.chain: h for h in AuditChainHead.objects.all()}
    limits = {c: h.seq for c, h in heads.items()}
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce(min(id), 1) - 1, coalesce(max(id), 0) FROM compliance_auditevent")
        lo, hi = cur.fetchone()
    span = hi - lo
    workers = workers or (min(4, os.cpu_count() or 1) if span >= _PARALLEL_MIN else 1)
    # Workers use their own connections, so they cannot see rows of an uncommitted transaction (tests).
    if workers > 1 and not connection.in_atomic_block:
        params = connection.get_connection_params()
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SELECT pg_export_snapshot()")
            snapshot = cur.fetchone()[0]
            # Heads as of the snapshot the workers share.
            heads = {h.chain: h for h in AuditChainHead.objects.all()}
            limits = {c: h.seq for c, h in heads.items()}
            bounds = [lo + span * k // workers for k in range(workers + 1)]
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(workers) as pool:
                parts = pool.map(_scan_worker, [(params, snapshot, bounds[k], bounds[k + 1], limits) for k in range(workers)])
    else:
        with connection.cursor() as cur:
            parts = [_scan_range(cur.cursor, lo, hi, limits)]
    checked = sum(p["checked"] for p in parts)
    problems = [p["problem"] for p in parts if p["problem"]]
    anomalies = set().union(*(p["anomalies"] for p in parts))
    # Stitch every chain across the ranges, then compare its end with the head.
    state: dict[int, tuple[int, str]] = {}
    for part in parts:
        for chain, (first_id, first_seq, first_prev, last_seq, last_hash) in part["ends"].items():
            if chain in anomalies:
                continue
            seq0, hash0 = state.get(chain, (0, GENESIS))
            if first_seq != seq0 + 1:
                anomalies.add(chain)
            elif first_prev != hash0:
                problems.append((first_id, f"chain {chain} seq {first_seq}: prev_hash does not match the previous event"))
                anomalies.add(chain)  # reported; do not stitch further
                continue
            state[chain] = (last_seq, last_hash)
    missing = []
    for chain in sorted(set(heads) | set(state)):
        if chain in anomalies:
            continue
        head = heads.get(chain)
        seq0, hash0 = state.get(chain, (0, GENESIS))
        if head and (head.seq != seq0 or head.hash != hash0) and not problems:
            missing.append(f"chain {chain}: last events missing (head at seq {head.seq})")
    for chain in sorted(anomalies):
        exact = _verify_chain_exact(chain, batch, heads.get(chain))
        if not exact.ok:
            if exact.first_broken_id is not None:
                problems.append((exact.first_broken_id, exact.detail))
            else:
                missing.append(exact.detail)
    if problems:
        first_id, detail = min(problems)
        return VerifyResult(ok=False, checked=checked, first_broken_id=first_id, detail=detail)
    if missing:
        return VerifyResult(ok=False, checked=checked, detail=missing[0])
    return VerifyResult(ok=True, checked=checked)


def audit_verify(*, batch: int = 20000, record: bool = True, workers: int | None = None) -> VerifyResult:
    """Walk every chain in order and report the first broken link (lowest event id if several)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        result = _verify_fast(batch=batch, workers=workers)
    else:
        result = VerifyResult(ok=True, checked=0)
        heads = {h.chain: h for h in AuditChainHead.objects.all()}
        chains = sorted(set(AuditEvent.objects.values_list("chain", flat=True).distinct()) | set(heads))
        checked = 0
        for chain in chains:
            part = _verify_chain_exact(chain, batch, heads.get(chain))
            checked += part.checked
            if not part.ok:
                result = part
                break
        result.checked = checked
    # A chain can be whole and still shorter than it was: compare it with the signed checkpoints.
    anchored = audit_checkpoint_check()
    if anchored and result.ok:
        first_id, detail = anchored[0]
        result = VerifyResult(ok=False, checked=result.checked, first_broken_id=first_id, detail=detail)
    elif anchored:
        result.detail += f"; also: {anchored[0][1]}"
    if record:
        AuditVerification.objects.create(
            ok=result.ok, events_checked=result.checked, first_broken_id=result.first_broken_id, detail=result.detail
        )
    return result


# --- Anchoring: signed checkpoints kept outside the database -----------------------------------
#
# The chain proves every event since genesis up to the head, but not that the head is where it was:
# deleting the last events and rewinding ``AuditChainHead`` leaves a shorter, valid chain. So the head
# of every chain (id, seq, hash) is written periodically (compliance.tasks.audit_checkpoint_task, or
# ``manage.py audit_checkpoint``) to append-only JSON-lines files in AUDIT_CHECKPOINT_DIR, one file per
# chain, each line signed with HMAC-SHA256 under AUDIT_CHECKPOINT_KEY (settings/env, never in the
# database). ``audit_verify`` then requires every chain to reach its latest checkpoint with the same
# event there. Whoever can rewrite the database alone can neither forge a line nor hide a rewind; the
# directory should be one the app's database role cannot reach (another host, object storage with
# retention, or ``chattr +a``).

CHECKPOINT_VERSION = 1


class CheckpointError(Exception):
    pass


def _checkpoint_key() -> bytes:
    key = getattr(settings, "AUDIT_CHECKPOINT_KEY", "")
    if not key:
        raise CheckpointError("AUDIT_CHECKPOINT_KEY is not set")
    return key.encode()


def _checkpoint_dir() -> Path:
    return Path(settings.AUDIT_CHECKPOINT_DIR)


def checkpoint_sign(payload: dict, *, key: bytes | None = None) -> str:
    """HMAC-SHA256 (hex) over the canonical JSON of ``payload`` without its ``sig``."""
    body = _canonical({k: v for k, v in payload.items() if k != "sig"})
    return hmac.new(key or _checkpoint_key(), body, hashlib.sha256).hexdigest()


def checkpoint_signature_ok(payload: dict, *, key: bytes | None = None) -> bool:
    sig = payload.get("sig")
    return isinstance(sig, str) and hmac.compare_digest(sig, checkpoint_sign(payload, key=key))


def _checkpoint_file(chain: int) -> Path:
    return _checkpoint_dir() / f"chain-{int(chain)}.jsonl"


def _last_line(path) -> str:
    """The last non-empty line of a file, read from its end (the files only grow)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        block = 4096
        while True:
            start = max(0, size - block)
            fh.seek(start)
            data = fh.read(size - start)
            lines = [line for line in data.split(b"\n") if line.strip()]
            if len(lines) > 1 or start == 0:
                return lines[-1].decode() if lines else ""
            block *= 4


def audit_checkpoint_latest(*, chain: int) -> dict | None:
    """The latest checkpoint line of ``chain`` (lender id, 0 for events without a lender), as written."""
    path = _checkpoint_file(chain)
    if not path.exists():
        return None
    line = _last_line(path)
    return json.loads(line) if line else None


def audit_checkpoint_export(*, lender_id: int) -> str:
    """The latest signed checkpoint of a lender's chain as compact JSON ("" if none), for its exports:
    the lender keeps a copy of the anchor the platform cannot later rewrite unnoticed."""
    latest = audit_checkpoint_latest(chain=lender_id)
    return json.dumps(latest, sort_keys=True, separators=(",", ":")) if latest else ""


def audit_checkpoint_write() -> list[dict]:
    """Append a signed checkpoint for every chain whose head moved since its last one. Returns them."""
    from django.db import connection

    key = _checkpoint_key()
    directory = _checkpoint_dir()
    directory.mkdir(parents=True, exist_ok=True)
    heads = AuditChainHead._meta.db_table
    events = AuditEvent._meta.db_table
    with connection.cursor() as cur:  # one statement, so heads and events come from one snapshot
        cur.execute(
            f"SELECT h.chain, h.seq, h.hash, e.id, e.hash FROM {heads} h "
            f"LEFT JOIN {events} e ON e.chain = h.chain AND e.seq = h.seq WHERE h.seq > 0 ORDER BY h.chain"
        )
        rows = cur.fetchall()
    written = []
    at = timezone.now().astimezone(UTC).isoformat()
    for chain, seq, head_hash, event_id, event_hash_ in rows:
        if event_id is None or event_hash_ != head_hash:
            continue  # a head that does not match its event is not signed; audit_verify reports it
        latest = audit_checkpoint_latest(chain=chain)
        if latest and latest.get("seq") == seq and latest.get("hash") == head_hash:
            continue
        line = {"v": CHECKPOINT_VERSION, "chain": chain, "seq": seq, "event_id": event_id, "hash": head_hash, "at": at}
        line["sig"] = checkpoint_sign(line, key=key)
        # O_APPEND: one write per line, never rewriting what is there.
        fd = os.open(_checkpoint_file(chain), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, (json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        written.append(line)
    return written


def audit_checkpoint_check() -> list[tuple[int | None, str]]:
    """Problems found comparing the database with the checkpoint files: (event id or None, detail).

    Every line must carry a valid signature; each chain's head must have reached its latest checkpoint
    and the event at that seq must be the one checkpointed (same id and hash).
    """
    directory = _checkpoint_dir()
    files = sorted(directory.glob("chain-*.jsonl")) if directory.is_dir() else []
    if not files:
        return []
    try:
        key = _checkpoint_key()
    except CheckpointError as exc:
        return [(None, f"checkpoints present but not checkable: {exc}")]
    problems: list[tuple[int | None, str]] = []
    heads = {h.chain: h for h in AuditChainHead.objects.all()}
    for path in files:
        latest = None
        with open(path, encoding="utf-8") as fh:
            for number, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    line = {}
                if not checkpoint_signature_ok(line, key=key) or path.name != f"chain-{line.get('chain')}.jsonl":
                    problems.append((None, f"{path.name} line {number}: checkpoint signature invalid (file tampered?)"))
                    continue
                if latest is not None and line["seq"] < latest["seq"]:
                    problems.append((None, f"{path.name} line {number}: checkpoint goes backwards (file tampered?)"))
                latest = line
        if latest is None:
            continue
        chain, seq = latest["chain"], latest["seq"]
        head = heads.get(chain)
        if head is None or head.seq < seq:
            problems.append((None, f"chain {chain}: head at seq {head.seq if head else 0} is behind the checkpoint "
                                   f"of {latest['at']} at seq {seq} (events removed and head rewound?)"))
            continue
        event = AuditEvent.objects.filter(chain=chain, seq=seq).values_list("id", "hash").first()
        if event is None or event != (latest["event_id"], latest["hash"]):
            problems.append((event[0] if event else None,
                             f"chain {chain} seq {seq}: event differs from the checkpoint of {latest['at']} (chain rewritten?)"))
    return problems
