"""The PostgreSQL pipeline: valid rows are COPYed into an unlogged staging table (a helper process
reads every other chunk of a large CSV), checked set-based, then applied with INSERT ... SELECT /
UPDATE ... FROM; a large batch in shares applied by several connections at once, each committing with
its PlacementBatchPart row so that a batch that fails part-way is resumed by processing it again."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import IO

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from cases.models import Borrower, PlacementBatch, PlacementBatchPart
from compliance.audit import audit_log_many

from ..reader import Sniffed
from ..validation import CleanRow
from . import base

log = logging.getLogger(__name__)

ACCOUNT_CHANGE_COLUMNS = "id, borrower_id, external_ref, old, new"
# Shares of a large batch: rows go to one of PART_BUCKETS buckets by a hash of the borrower key (so a
# borrower, and every account of it, belongs to exactly one share); share p of n takes the buckets
# b with b % n == p.
PART_BUCKETS = 64
LOCK_PLACEMENTS = 0x504C  # advisory-lock namespace ("PL") for one batch per lender at a time
LOCK_BATCH_RUN = 0x5052  # advisory-lock namespace ("PR") for one run of a given batch at a time


@contextlib.contextmanager
def batch_run_lock(*, batch_id: int) -> Iterator[bool]:
    """One run of a batch at a time. A session-level advisory lock, held for the whole run whatever
    transactions it commits. Inside a caller's transaction the transaction-level form is taken
    instead: it is released with that transaction, even one that failed and can no longer run the
    unlock (a session lock would outlive it)."""
    session = not connection.in_atomic_block
    fn = "pg_try_advisory_lock" if session else "pg_try_advisory_xact_lock"
    with connection.cursor() as cur:
        cur.execute(f"SELECT {fn}(%s, %s::integer)", [LOCK_BATCH_RUN, batch_id])
        acquired = cur.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired and session:
            try:
                with connection.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s, %s::integer)", [LOCK_BATCH_RUN, batch_id])
            except Exception:  # noqa: BLE001 - a lost connection has released it; do not hide the real error
                log.warning("could not release the run lock of placement batch %s", batch_id)


HELPER_DB_ENV = "PLACEMENT_HELPER_DB"  # the helper's connection settings (JSON), read by stage_helper
HELPER_DB_KEYS = ("NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")


def _helper_db_settings(db: dict) -> str:
    """The connection settings the helper process must use, as JSON (raises TypeError if OPTIONS
    hold something JSON cannot carry)."""
    return json.dumps({k: db[k] for k in HELPER_DB_KEYS if k in db})


class StageHelper:
    """A second process reading the same CSV and staging the other half of its chunks
    (``python -m cases.importers.stage_helper``). Used on PostgreSQL for large CSV files when the
    task is not inside a caller's transaction (the helper's connection must see the batch)."""

    def __init__(self, proc: subprocess.Popen, log: IO[bytes]):
        self.proc, self.log = proc, log

    @classmethod
    def start(cls, *, batch: PlacementBatch, stage, sniffed: Sniffed, today: date,
              mapping: dict) -> StageHelper | None:
        if (not isinstance(stage, PgStage) or stage.alone or sniffed.kind != "csv"
                or batch.kind != PlacementBatch.Kind.PLACEMENT or settings.PLACEMENT_APPLY_WORKERS < 2
                or sniffed.estimated_rows < 2 * settings.PLACEMENT_ROWS_PER_WORKER):
            return None
        try:
            path = batch.file.path
        except NotImplementedError:  # remote storage: only this process can read it
            return None
        try:
            db = _helper_db_settings(connection.settings_dict)
        except (TypeError, ValueError):  # OPTIONS the helper cannot be given (not JSON): read alone
            log.warning("placement batch %s: database OPTIONS not serialisable; no helper reader", batch.pk)
            return None
        # The connection's own settings, not a URL rebuilt from them: a URL loses OPTIONS (sslmode,
        # ...) and cannot carry a Unix-socket HOST; NAME is the one in use (a test database, say).
        env = {**os.environ, HELPER_DB_ENV: db,
               "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "servicing.settings")}
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(  # noqa: S603 - our own module, arguments are ids and dates
            [sys.executable, "-m", "cases.importers.stage_helper", str(batch.pk), path, sniffed.encoding,
             today.isoformat(), str(base.CHUNK_ROWS), str(os.getpid()), json.dumps(mapping)],
            cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=stderr,
        )
        return cls(proc, stderr)

    def wait(self) -> dict:
        out, _err = self.proc.communicate()
        if self.proc.returncode != 0:
            self.log.seek(0)
            tail = self.log.read()[-1500:].decode("utf-8", "replace")
            raise RuntimeError(f"the helper reading the file failed (exit {self.proc.returncode}): {tail}")
        return json.loads(out.decode().strip().splitlines()[-1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------------------------
# Staging: COPY into an unlogged table, then set-based SQL

_COPY_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
PLACEMENT_STAGE_COLUMNS = (
    "line", "external_ref", "borrower_key", "borrower_name", "national_id", "phones", "emails", "address", "region",
    "jurisdiction", "time_zones", "product", "principal", "balance", "currency", "due_date", "last_payment_date",
    "days_past_due", "bucket", "parts",
)


def _c(value) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPE)
    return text


def _json_list(items: list[str]) -> str:
    # Phones ("+" and digits) and IANA zones need no JSON escaping; anything else goes through json.dumps.
    if not items:
        return "[]"
    if any('"' in i or "\\" in i for i in items):
        return json.dumps(items, ensure_ascii=False)
    return '["' + '","'.join(items) + '"]'


def _parts(row: CleanRow) -> str:
    # Validated amounts as text: no escaping needed. Stored in the account's extra (finance reads it).
    if row.parts is None:
        return "\\N"
    p = row.parts
    return f'{{"interest":"{p["interest"]}","fees":"{p["fees"]}","costs":"{p["costs"]}"}}'


def copy_line(row: CleanRow) -> str:
    """One staging row in PostgreSQL COPY text format."""
    # Fast path: the free-text fields need no COPY escaping (nearly always). The other fields are
    # validated to digits, "+", codes from fixed sets or ISO dates, so they never need it.
    free = row.external_ref + row.borrower_name + row.address + row.region + row.product + row.email
    if "\\" in free or "\t" in free or "\n" in free or "\r" in free or '"' in row.email:
        return _copy_line_escaped(row)
    phones = row.phones
    return "\t".join((
        str(row.line), row.external_ref, row.borrower_key, row.borrower_name, row.national_id,
        ('["' + '","'.join(phones) + '"]') if phones else "[]", f'["{row.email}"]' if row.email else "[]",
        row.address, row.region, row.jurisdiction, f'["{row.time_zone}"]' if row.time_zone else "[]", row.product,
        str(row.principal), str(row.balance), row.currency, row.due_date.isoformat(),
        row.last_payment_date.isoformat() if row.last_payment_date else "\\N", str(row.days_past_due), row.bucket,
        _parts(row),
    )) + "\n"


def _copy_line_escaped(row: CleanRow) -> str:
    return "\t".join((
        str(row.line), _c(row.external_ref), _c(row.borrower_key), _c(row.borrower_name), _c(row.national_id),
        _c(_json_list(row.phones)), _c(_json_list([row.email] if row.email else [])),
        _c(row.address), _c(row.region), row.jurisdiction,
        _c(_json_list([row.time_zone] if row.time_zone else [])), _c(row.product),
        str(row.principal), str(row.balance), row.currency, row.due_date.isoformat(),
        row.last_payment_date.isoformat() if row.last_payment_date else "\\N", str(row.days_past_due), row.bucket,
        _parts(row),
    )) + "\n"


class _IterFile:
    """A read-only text file over an iterator of strings: COPY pulls rows as they are validated, so the
    database parses and stores one part while Python validates the next (two cores busy, memory flat)."""

    def __init__(self, parts: Iterator[str]):
        self.parts = parts
        self.buffer = ""
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> str:
        pieces, have = [self.buffer], len(self.buffer)
        target = size if size and size > 0 else 1 << 30
        try:
            for part in self.parts:
                pieces.append(part)
                have += len(part)
                if have >= target:
                    break
        except BaseException as exc:
            # psycopg2 turns an error raised in read() into "QueryCanceled: COPY from stdin failed";
            # kept here so the reader's own error (a file limit, a bad encoding) is what is raised.
            self.error = exc
            raise
        data = "".join(pieces)
        if size and size > 0:
            self.buffer, data = data[size:], data[:size]
        else:
            self.buffer = ""
        return data

    readline = read


class PgStage:
    """``base.Stage`` on PostgreSQL: an unlogged staging table filled by COPY, applied set-based."""

    COPY_BLOCK = 1 << 18

    def __init__(self, *, batch: PlacementBatch, create: bool = True):
        self.batch = batch
        self.kind = batch.kind
        self.count = 0
        # An unlogged table, not a temporary one: a large batch is applied by several connections.
        # It is rebuilt from the file on every attempt, so it needs no crash safety.
        self.table = f"placement_stage_{batch.pk}"
        # Inside a caller's transaction (a test, say) other connections cannot see the staged rows:
        # the batch is then applied by this connection alone.
        self.alone = connection.in_atomic_block
        # Progress goes through a second, autocommit connection: the main one is busy with the COPY.
        main = connections[DEFAULT_DB_ALIAS]
        self.side = type(main)(dict(main.settings_dict), alias="placement_progress")
        if not create:  # the helper process fills the table the task created
            return
        with connection.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.table} CASCADE")
            if self.kind == PlacementBatch.Kind.RECALL:
                cur.execute(f"CREATE UNLOGGED TABLE {self.table} (line integer, external_ref text, reason text)")
            else:
                # part: which share of the batch a row goes to; computed by the database during the COPY.
                cur.execute(
                    f"CREATE UNLOGGED TABLE {self.table} (line integer, external_ref text,"
                    ' borrower_key text COLLATE "C" NOT NULL,'
                    " borrower_name text, national_id text, phones jsonb, emails jsonb, address text, region text,"
                    " jurisdiction text, time_zones jsonb, product text, principal numeric(14,2), balance numeric(14,2),"
                    " currency text, due_date date, last_payment_date date, days_past_due integer, bucket text,"
                    " parts jsonb,"
                    f" part smallint GENERATED ALWAYS AS (hashtext(borrower_key) & {PART_BUCKETS - 1}) STORED)"
                )

    def progress(self, *, rows: int, errors: int) -> None:
        if self.alone:
            # The caller's transaction holds the batch row (it reset the counters): an update from
            # another connection would wait for it forever. Nobody outside sees progress then anyway.
            return
        # Added, not set: the helper process reports its own lines into the same counters.
        with self.side.cursor() as cur:
            cur.execute("UPDATE cases_placementbatch SET processed_rows = processed_rows + %s,"
                        " error_count = error_count + %s, heartbeat_at = now() WHERE id = %s",
                        [rows, errors, self.batch.pk])

    def load(self, rows: Iterator[CleanRow], errors: base.Errors) -> None:
        if self.kind == PlacementBatch.Kind.RECALL:
            lines = (f"{r.line}\t{_c(r.external_ref)}\t{_c(r.reason)}\n" for r in rows)
            columns = "line, external_ref, reason"
        else:
            lines = map(copy_line, rows)
            columns = ", ".join(PLACEMENT_STAGE_COLUMNS)
        source = _IterFile(lines)
        try:
            # A savepoint inside a caller's transaction: a COPY that fails leaves it usable.
            with transaction.atomic(), connection.cursor() as cur:
                cur.copy_expert(f"COPY {self.table} ({columns}) FROM STDIN", source, self.COPY_BLOCK)
        except Exception:
            if source.error is not None:
                raise source.error from None
            raise

    def check(self, errors: base.Errors) -> None:
        ref_column = self.batch.report["columns"]["external_ref"]
        with connection.cursor() as cur:  # every process has staged its rows by now
            cur.execute(f"SELECT count(*) FROM {self.table}")
            self.count = cur.fetchone()[0]
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SET LOCAL work_mem = '256MB'")
            # The first line with a reference wins; later ones are errors (and leave the staging table).
            cur.execute(f"SELECT external_ref FROM {self.table} GROUP BY external_ref HAVING count(*) > 1 LIMIT 1")
            if cur.fetchone():
                cur.execute(
                    f"DELETE FROM {self.table} s USING (SELECT line, row_number() OVER (PARTITION BY external_ref"
                    f" ORDER BY line) AS n FROM {self.table}) d WHERE d.n > 1 AND s.line = d.line"
                    f" RETURNING s.line, s.external_ref")
                dups = sorted(cur.fetchall())
                for line, ref in dups:
                    errors.add(line, [(ref_column, _("Duplicate external reference %(ref)s (already on an earlier line).") % {"ref": ref})], ref=ref, cells={ref_column: ref})
                self.count -= len(dups)
            if self.kind == PlacementBatch.Kind.RECALL:
                cur.execute(
                    f"DELETE FROM {self.table} s WHERE NOT EXISTS (SELECT 1 FROM cases_overdueaccount a"
                    f" WHERE a.lender_id = %s AND a.external_ref = s.external_ref) RETURNING s.line, s.external_ref",
                    [self.batch.lender_id],
                )
                unknown = sorted(cur.fetchall())
                for line, ref in unknown:
                    errors.add(line, [(ref_column, _("Unknown external reference %(ref)s.") % {"ref": ref})], ref=ref, cells={ref_column: ref})
                self.count -= len(unknown)
        with connection.cursor() as cur:
            cur.execute(f"ANALYZE {self.table}")

    def lock(self) -> None:
        # A transaction-level advisory lock rather than a lock on the lender row: it serialises the
        # lender's batches without blocking agents' writes that reference the lender meanwhile.
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s::integer)", [LOCK_PLACEMENTS, self.batch.lender_id])

    def apply(self) -> tuple[int, int]:
        if self.kind == PlacementBatch.Kind.RECALL:
            with connection.cursor() as cur:
                cur.execute("SET LOCAL work_mem = '256MB'")
                cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            return _pg_recall(self.table, self.batch)
        return _pg_place_shares(self.table, self.batch, self.count, alone=self.alone)

    def close(self) -> None:
        self.side.close()
        try:
            with connection.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {self.table} CASCADE")  # with the views of its shares
        except Exception:  # noqa: BLE001 - the session may already be gone
            log.warning("could not drop %s", self.table)


_BKEY_SQL = "CASE WHEN national_id <> '' THEN 'id:' || national_id ELSE 'pn:' || coalesce(phones->>0, '') || '|' || name END"


class _Timed:
    """Wraps a cursor to record how long each set-based statement takes (kept in the batch report)."""

    def __init__(self, cur, timings: dict):
        self.cur, self.timings, self.n = cur, timings, 0

    def execute(self, sql: str, params=None):
        self.n += 1
        t0 = time.perf_counter()
        self.cur.execute(sql, params)
        self.timings[f"sql{self.n}"] = round(time.perf_counter() - t0, 3)

    def __getattr__(self, name):
        return getattr(self.cur, name)


def _share_count(rows: int, *, alone: bool) -> int:
    if alone:
        return 1
    return max(1, min(settings.PLACEMENT_APPLY_WORKERS, rows // max(1, settings.PLACEMENT_ROWS_PER_WORKER)))


def _pg_place_shares(table: str, batch: PlacementBatch, rows: int, *, alone: bool) -> tuple[int, int]:
    """Apply the staged rows share by share: share 0 here, in the caller's transaction (committed
    with the batch's result), the others at once in threads with their own connections, each
    committing with its PlacementBatchPart row. Shares applied by an earlier attempt are skipped.

    ``alone`` (inside a caller's transaction, where no other connection sees the staging table): a
    new batch is one share; the shares an earlier attempt left are applied here one after another."""
    done = {p.part: p for p in PlacementBatchPart.objects.filter(batch_id=batch.pk)}
    shares = next(iter(done.values())).parts if done else _share_count(rows, alone=alone)
    borrower_changes = _pg_borrower_updates(table, batch)
    others = [p for p in range(1, shares) if p not in done]
    timings = batch.report.setdefault("timings", {})
    main = None
    threaded = [] if alone else others
    with ThreadPoolExecutor(max_workers=max(1, len(threaded)), thread_name_prefix=f"placement-{batch.pk}") as pool:
        futures = [pool.submit(_pg_place_share_thread, table, batch, p, shares, timings) for p in threaded]
        if alone:
            for p in others:
                _pg_place_share_recorded(table, batch, p, shares, timings)
        if 0 not in done:
            main = _pg_place_share(table, batch, 0, shares, timings)
    # Every thread has ended here (the pool waited): a failed share raises now, and this
    # transaction, with share 0, rolls back; the shares that committed stay, recorded for the retry.
    for fut in futures:
        fut.result()
    # The audit chain is locked only now, after the other shares committed theirs: taking it
    # earlier, while waiting for them, would deadlock with their audit writes.
    batch.report["borrowers_updated"] = base.audit_borrower_changes(
        batch, _iter_table(borrower_changes, "id, old, new", json_from=1) if borrower_changes else ())
    if main is not None:
        created, updated, changes = main
        if changes:
            base.audit_changes(batch, _iter_table(changes, ACCOUNT_CHANGE_COLUMNS, json_from=3))
        PlacementBatchPart.objects.create(batch_id=batch.pk, part=0, parts=shares, created_count=created,
                                          updated_count=updated)
    parts = PlacementBatchPart.objects.filter(batch_id=batch.pk)
    return sum(p.created_count for p in parts), sum(p.updated_count for p in parts)


def _pg_place_share_thread(table: str, batch: PlacementBatch, part: int, shares: int, timings: dict) -> None:
    try:
        with transaction.atomic():
            created, updated = _pg_place_share_recorded(table, batch, part, shares, timings)
        base.progress(batch.pk, created_count=F("created_count") + created, updated_count=F("updated_count") + updated)
    finally:
        connection.close()  # this thread's own connection


def _pg_place_share_recorded(table: str, batch: PlacementBatch, part: int, shares: int,
                             timings: dict) -> tuple[int, int]:
    """Apply share ``part`` (not share 0) with its audit events and its PlacementBatchPart row, in the
    current transaction."""
    created, updated, changes = _pg_place_share(table, batch, part, shares, timings)
    if changes:
        base.audit_changes(batch, _iter_table(changes, ACCOUNT_CHANGE_COLUMNS, json_from=3))
    PlacementBatchPart.objects.create(batch_id=batch.pk, part=part, parts=shares, created_count=created,
                                      updated_count=updated)
    return created, updated


def _pg_place_share(table: str, batch: PlacementBatch, part: int, shares: int,
                    timings: dict) -> tuple[int, int, str | None]:
    with connection.cursor() as cur:
        cur.execute("SET LOCAL work_mem = '256MB'")  # sorts and hash joins over the whole file stay in memory
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        source = table
        if shares > 1:
            source = f"{table}_p{part}"
            buckets = [b for b in range(PART_BUCKETS) if b % shares == part]
            # A plain filter on the analysed "part" column, so the planner estimates the share's size.
            cur.execute(f"CREATE OR REPLACE TEMP VIEW {source} AS SELECT * FROM {table}"
                        f" WHERE part IN ({', '.join(map(str, buckets))})")
    return _pg_place(source, batch, suffix=f"{batch.pk}_{part}", timings=timings.setdefault(f"share{part}", {}))


def _existing_borrowers_sql(table: str) -> str:
    """(borrower key, id) of the lender's existing borrowers named in ``table``: by national ID, else by
    first phone + name (the lowest id if several match). Two %s parameters: the lender, twice."""
    return (
        f"(SELECT DISTINCT ON (s.borrower_key) s.borrower_key, b.id FROM {table} s"
        f" JOIN cases_borrower b ON b.national_id = s.national_id"
        f" WHERE b.lender_id = %s AND s.national_id <> '' ORDER BY s.borrower_key, b.id)"
        f" UNION ALL (SELECT DISTINCT ON (s.borrower_key) s.borrower_key, b.id FROM {table} s"
        f" JOIN cases_borrower b ON b.name = s.borrower_name"
        f" WHERE b.lender_id = %s AND s.national_id = '' AND b.phones @> jsonb_build_array(s.phones->>0)"
        f" ORDER BY s.borrower_key, b.id)"
    )


def _merge_contacts_sql(rows_sql: str) -> str:
    """A statement head ending in the CTE ``upd`` (id, old, new): merges into each borrower of
    ``rows_sql`` (id, line, phones, emails, address) the phones and emails it lacks (appended in the
    order they first appear in the file, none removed) and the file's last non-empty address.
    One %s parameter after those of ``rows_sql``: the update time."""
    return (
        f"WITH r AS ({rows_sql}),"
        # The borrowers' current values, looked up one by one by id (LIMIT keeps the planner from
        # turning this into a scan of the whole table, which grows with every lender's borrowers).
        f" cur AS (SELECT i.id, b.phones, b.emails, b.address FROM (SELECT DISTINCT id FROM r) i,"
        f" LATERAL (SELECT phones, emails, address FROM cases_borrower WHERE id = i.id LIMIT 1) b),"
        f" ph AS (SELECT r.id, p.v, min(r.line::bigint * 1000 + p.o) AS pos FROM r,"
        f" jsonb_array_elements_text(r.phones) WITH ORDINALITY AS p(v, o) GROUP BY r.id, p.v),"
        f" em AS (SELECT r.id, e.v, min(r.line::bigint * 1000 + e.o) AS pos FROM r,"
        f" jsonb_array_elements_text(r.emails) WITH ORDINALITY AS e(v, o) GROUP BY r.id, e.v),"
        f" ph_add AS (SELECT ph.id, jsonb_agg(ph.v ORDER BY ph.pos) AS vals FROM ph JOIN cur ON cur.id = ph.id"
        f" WHERE NOT cur.phones @> jsonb_build_array(ph.v) GROUP BY ph.id),"
        f" em_add AS (SELECT em.id, jsonb_agg(em.v ORDER BY em.pos) AS vals FROM em JOIN cur ON cur.id = em.id"
        f" WHERE NOT cur.emails @> jsonb_build_array(em.v) GROUP BY em.id),"
        f" ad AS (SELECT d.id, d.address FROM (SELECT DISTINCT ON (id) id, address FROM r WHERE address <> ''"
        f" ORDER BY id, line DESC) d JOIN cur ON cur.id = d.id WHERE cur.address <> d.address),"
        f" ids AS (SELECT id FROM ph_add UNION SELECT id FROM em_add UNION SELECT id FROM ad),"
        f" cand AS (SELECT cur.id, jsonb_build_object('phones', cur.phones, 'emails', cur.emails, 'address', cur.address)"
        f" AS old, cur.phones || coalesce(ph_add.vals, '[]') AS phones, cur.emails || coalesce(em_add.vals, '[]') AS emails,"
        f" coalesce(ad.address, cur.address) AS address FROM ids JOIN cur ON cur.id = ids.id"
        f" LEFT JOIN ph_add ON ph_add.id = ids.id LEFT JOIN em_add ON em_add.id = ids.id LEFT JOIN ad ON ad.id = ids.id),"
        f" upd AS (UPDATE cases_borrower b SET phones = cand.phones, emails = cand.emails, address = cand.address,"
        f" updated_at = %s FROM cand WHERE b.id = cand.id RETURNING b.id, cand.old,"
        f" jsonb_build_object('phones', b.phones, 'emails', b.emails, 'address', b.address) AS new)"
    )


def _pg_borrower_updates(table: str, batch: PlacementBatch) -> str | None:
    """New contact details for the lender's existing borrowers. Returns the temp table of
    (id, old, new) to audit, or None if nothing changed. Runs before the shares start, so an existing
    borrower row is only ever updated by this transaction."""
    changes, known = f"placement_borrower_changes_{batch.pk}", f"placement_known_{batch.pk}"
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {changes}, {known}")
        # A primary key, for _iter_table's keyset pages (each page an index range, not a scan).
        cur.execute(f"CREATE TEMP TABLE {changes} (id bigint PRIMARY KEY, old jsonb, new jsonb) ON COMMIT DROP")
        cur.execute(f'CREATE TEMP TABLE {known} (bkey text COLLATE "C", id bigint) ON COMMIT DROP')
        cur.execute(f"INSERT INTO {known} {_existing_borrowers_sql(table)}", [batch.lender_id, batch.lender_id])
        if not cur.rowcount:  # a first file: nobody to update
            return None
        cur.execute(f"ANALYZE {known}")
        rows_sql = (f"SELECT m.id, s.line, s.phones, s.emails, s.address FROM {table} s"
                    f" JOIN {known} m ON m.bkey = s.borrower_key")
        cur.execute(f"{_merge_contacts_sql(rows_sql)} INSERT INTO {changes} SELECT * FROM upd", [timezone.now()])
        return changes if cur.rowcount else None


# The borrower columns the INSERT above names; any other column with a model default gets that default.
_BORROWER_NAMED = frozenset((
    "lender_id", "name", "national_id", "phones", "emails", "address", "region", "jurisdiction", "time_zones",
    "sms_consent", "email_consent", "after_hours_consent", "cease", "dispute", "attorney", "bankruptcy", "deceased",
    "vulnerable", "created_at", "updated_at"))


def _borrower_other_defaults() -> tuple[list[str], list]:
    """Columns of Borrower the set-based INSERT does not name, with their model defaults (a default
    set in Python only, not in the database, would otherwise leave a NOT NULL column empty)."""
    cols, values = [], []
    for f in Borrower._meta.concrete_fields:
        if f.primary_key or f.generated or f.column in _BORROWER_NAMED or not f.has_default():
            continue
        cols.append(connection.ops.quote_name(f.column))
        values.append(f.get_db_prep_save(f.get_default(), connection))
    return cols, values


def _pg_place(table: str, batch: PlacementBatch, *, suffix: str, timings: dict) -> tuple[int, int, str | None]:
    """Apply the staged rows of ``table``; returns (created, updated, the temp table of changes to audit)."""
    lender_id, now = batch.lender_id, timezone.now()
    bmap = f"placement_bmap_{suffix}"
    with connection.cursor() as raw:
        cur = _Timed(raw, timings)
        # Borrowers: existing ones by national ID, else by first phone + name; the rest are created.
        # The key -> id map is a narrow side table, cheaper than rewriting every staging row.
        cur.execute(f"DROP TABLE IF EXISTS {bmap}")
        # Keys collate as "C": they are only grouped and joined, and byte order sorts much faster.
        cur.execute(f'CREATE TEMP TABLE {bmap} (bkey text COLLATE "C", id bigint, created boolean) ON COMMIT DROP')
        cur.execute(f"INSERT INTO {bmap} SELECT *, false FROM ({_existing_borrowers_sql(table)}) e",
                    [lender_id, lender_id])
        other_cols, other_values = _borrower_other_defaults()
        cur.execute(
            f"WITH ins AS (INSERT INTO cases_borrower (lender_id, name, national_id, phones, emails, address, region,"
            f" jurisdiction, time_zones, sms_consent, email_consent, after_hours_consent, cease, dispute, attorney,"
            f" bankruptcy, deceased, vulnerable, created_at, updated_at{''.join(', ' + c for c in other_cols)})"
            f" SELECT %s, borrower_name, national_id, phones, emails, address, region,"
            f" jurisdiction, time_zones, true, true, false, false, false, false, false, false, false, %s, %s"
            f"{', %s' * len(other_cols)}"
            f" FROM (SELECT DISTINCT ON (borrower_key) * FROM {table} s"
            f" WHERE NOT EXISTS (SELECT 1 FROM {bmap} m WHERE m.bkey = s.borrower_key)"
            f" ORDER BY borrower_key, line) d ORDER BY borrower_key RETURNING id, {_BKEY_SQL} AS bkey)"
            f" INSERT INTO {bmap} SELECT bkey, id, true FROM ins",
            [lender_id, now, now, *other_values])
        cur.execute(f"ANALYZE {bmap}")
        # A new borrower is made from its first line; its other lines add their phones, emails and
        # address (as a later file does for a known borrower). The few keys on several lines go to a
        # small analysed table first, so the merge looks borrowers up by id instead of scanning them.
        multi = f"placement_multi_{suffix}"
        cur.execute(f"DROP TABLE IF EXISTS {multi}")
        cur.execute(f"CREATE TEMP TABLE {multi} ON COMMIT DROP AS SELECT m.bkey, m.id FROM {bmap} m JOIN"
                    f" (SELECT borrower_key FROM {table} GROUP BY borrower_key HAVING count(*) > 1) k"
                    f" ON k.borrower_key = m.bkey WHERE m.created")
        cur.execute(f"ANALYZE {multi}")
        cur.execute(
            _merge_contacts_sql(f"SELECT m.id, s.line, s.phones, s.emails, s.address FROM {table} s"
                                f" JOIN {multi} m ON m.bkey = s.borrower_key") + " SELECT count(*) FROM upd", [now])
        # New borrowers are inserted in borrower-key order (above), and accounts by borrower id (below):
        # the per-row foreign-key check and the borrower_id index then walk the borrowers sequentially
        # instead of at random across a table larger than shared_buffers.
        # Accounts already placed and changed: update, keeping the old values for the audit log.
        changes = f"placement_changes_{suffix}"
        cur.execute(f"DROP TABLE IF EXISTS {changes}")
        cur.execute(  # keyed by id for _iter_table's keyset pages
            f"CREATE TEMP TABLE {changes} (id bigint PRIMARY KEY, borrower_id bigint, external_ref text, old jsonb,"
            f" new jsonb) ON COMMIT DROP")
        cur.execute(
            f"WITH cur AS (SELECT a.id, s.*, jsonb_build_object('balance', a.balance::text, 'principal', a.principal::text,"
            f" 'due_date', a.due_date, 'last_payment_date', a.last_payment_date, 'currency', a.currency,"
            f" 'product', a.product) AS old"
            f" FROM cases_overdueaccount a JOIN {table} s ON a.external_ref = s.external_ref WHERE a.lender_id = %s"
            f" AND (a.balance, a.principal, a.due_date, a.last_payment_date, a.currency, a.product)"
            f" IS DISTINCT FROM (s.balance, s.principal, s.due_date, s.last_payment_date, s.currency, s.product)),"
            f" upd AS (UPDATE cases_overdueaccount a SET balance = cur.balance, principal = cur.principal,"
            f" due_date = cur.due_date, last_payment_date = cur.last_payment_date, currency = cur.currency,"
            f" product = cur.product, days_past_due = cur.days_past_due, bucket = cur.bucket, updated_at = %s"
            f" FROM cur WHERE a.id = cur.id RETURNING a.id, a.borrower_id, a.external_ref, cur.old,"
            f" jsonb_build_object('balance', a.balance::text, 'principal', a.principal::text, 'due_date', a.due_date,"
            f" 'last_payment_date', a.last_payment_date, 'currency', a.currency, 'product', a.product) AS new)"
            f" INSERT INTO {changes} SELECT * FROM upd", [lender_id, now])
        updated = cur.rowcount
        cur.execute(
            f"INSERT INTO cases_overdueaccount (lender_id, borrower_id, external_ref, product, principal, balance,"
            f" currency, due_date, last_payment_date, days_past_due, bucket, status, extra, placed_at, updated_at)"
            f" SELECT %s, m.id, s.external_ref, s.product, s.principal, s.balance, s.currency, s.due_date,"
            f" s.last_payment_date, s.days_past_due, s.bucket, 'new', jsonb_build_object('batch', %s)"
            f" || CASE WHEN s.parts IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object('balance_parts', s.parts) END,"
            f" %s, %s"
            f" FROM {table} s JOIN {bmap} m ON m.bkey = s.borrower_key"
            f" WHERE NOT EXISTS (SELECT 1 FROM cases_overdueaccount a WHERE a.lender_id = %s"
            f" AND a.external_ref = s.external_ref) ORDER BY m.id, s.line",
            [lender_id, batch.pk, now, now, lender_id])
        created = cur.rowcount
    return created, updated, (changes if updated else None)


def _iter_table(table: str, columns: str, *, json_from: int) -> Iterator[tuple]:
    """A temp table's rows in id order, 5,000 at a time (keyset); the columns from ``json_from`` on are jsonb."""
    last = 0
    while True:
        with connection.cursor() as cur:
            cur.execute(f"SELECT {columns} FROM {table} WHERE id > %s ORDER BY id LIMIT 5000", [last])
            rows = cur.fetchall()
        if not rows:
            return
        for r in rows:
            yield (*r[:json_from], *(json.loads(v) if isinstance(v, str) else v for v in r[json_from:]))
        last = rows[-1][0]


def _pg_recall(table: str, batch: PlacementBatch) -> tuple[int, int]:
    now = timezone.now()
    changes = f"recall_changes_{batch.pk}"
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {changes}")
        cur.execute(f"CREATE TEMP TABLE {changes} (id bigint PRIMARY KEY, borrower_id bigint, external_ref text,"
                    f" status text, agent_id bigint, reason text) ON COMMIT DROP")
        cur.execute(
            f"WITH cur AS (SELECT a.id, a.status, a.assigned_agent_id, s.reason FROM cases_overdueaccount a"
            f" JOIN {table} s ON a.external_ref = s.external_ref WHERE a.lender_id = %s AND a.status <> ALL(%s)),"
            f" upd AS (UPDATE cases_overdueaccount a SET status = 'recalled', assigned_agent_id = NULL,"
            f" locked_by_id = NULL, locked_until = NULL, updated_at = %s FROM cur WHERE a.id = cur.id"
            f" RETURNING a.id, a.borrower_id, a.external_ref, cur.status, cur.assigned_agent_id, cur.reason)"
            f" INSERT INTO {changes} SELECT * FROM upd", [batch.lender_id, list(base.RECALL_SKIP), now])
        updated = cur.rowcount
        cur.execute(f"UPDATE cases_callback SET status = 'cancelled' WHERE status = 'scheduled'"
                    f" AND account_id IN (SELECT id FROM {changes})")
    events: list[dict] = []
    for row in _iter_table(changes, "id, borrower_id, external_ref, status, agent_id, reason", json_from=6):
        events.append(base.recall_event(batch.lender_id, batch.pk, *row))
        if len(events) >= 5000:
            audit_log_many(events=events, actor=batch.uploaded_by)
            events = []
    if events:
        audit_log_many(events=events, actor=batch.uploaded_by)
    return 0, updated
