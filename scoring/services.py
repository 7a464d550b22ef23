"""Writes for scoring: train a model version, promote it (audited), refresh account scores."""

from __future__ import annotations

import io
import queue
import threading
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from compliance.audit import audit_log
from servicing import clock

from . import learn
from .features import FEATURES, FeatureBatch, features_iter, features_load
from .models import AccountScore, ScoreModel
from .reasons import reasons_json

CENT = Decimal("0.01")


def _setting(name: str, default):
    return getattr(settings, name, default)


def _next_version() -> int:
    return (ScoreModel.objects.aggregate(v=Max("version"))["v"] or 0) + 1


def rules_model_current() -> ScoreModel:
    """The rule-based score as a model version, so every rule score records a version too."""
    row = ScoreModel.objects.filter(kind=ScoreModel.Kind.RULES).order_by("-version").first()
    if row is not None:
        return row
    with transaction.atomic():
        # Serialise version numbers with anyone training at the same time.
        ScoreModel.objects.select_for_update().order_by("-version").first()
        row = ScoreModel.objects.create(
            version=_next_version(), kind=ScoreModel.Kind.RULES, features=list(FEATURES),
            params={"base": learn.RULE_BASE, "doc": "scoring.learn.rule_points"},
        )
        audit_log(action="scoring.model.created", subject=row, data={"version": row.version, "kind": row.kind},
                  actor_label="system")
    return row


def score_model_train(*, actor=None, as_of: datetime | None = None, horizon_days: int | None = None,
                      snapshots: int | None = None, min_outcomes: int | None = None) -> ScoreModel:
    """Fit a new candidate version on the platform's own history; stored with range, metrics, features.

    Snapshots: the accounts overdue at ``as_of - horizon - k*30 days`` (k = 0..snapshots-1), each
    labelled by whether a payment arrived within ``horizon`` days after it. Rows are split by a
    stable hash of the account id: a quarter is held out for the metrics.
    """
    now = as_of or clock.now()
    horizon = horizon_days or _setting("SCORING_HORIZON_DAYS", 30)
    k = snapshots or _setting("SCORING_TRAIN_SNAPSHOTS", 3)
    need = min_outcomes if min_outcomes is not None else _setting("SCORING_MIN_OUTCOMES", 200)
    parts = []
    for i in range(k):
        at = now - timedelta(days=horizon + 30 * i)
        batch = features_load(as_of=at, horizon_days=horizon, training=True, model_only=True)
        if batch is not None:
            parts.append(batch)
    if not parts:
        raise ValidationError(_("No account history to train on."))
    ids = np.concatenate([p.ids for p in parts])
    lender_ids = np.concatenate([p.lender_ids for p in parts])
    X = np.vstack([p.X for p in parts])
    y = np.concatenate([p.labels for p in parts]).astype(int)
    # A lender is modelled once it has enough labelled outcomes (and some of each kind); others keep the rules.
    lenders = sorted(
        int(lid) for lid in np.unique(lender_ids)
        if (lender_ids == lid).sum() >= need and 5 <= y[lender_ids == lid].sum() < (lender_ids == lid).sum() - 5
    )
    if not lenders:
        raise ValidationError(_("No lender has %(need)s labelled outcomes yet; the rule score stays in use.") % {"need": need})
    keep = np.isin(lender_ids, lenders)
    ids, lender_ids, X, y = ids[keep], lender_ids[keep], X[keep], y[keep]
    test = learn.split_mask(ids)
    params = learn.fit(X[~test], y[~test], lender_ids=lender_ids[~test], lenders=lenders)
    p_test, _contrib = learn.predict(params, X[test], lender_ids[test])
    metrics = {
        "test": learn.metrics(y[test], p_test, X[test][:, FEATURES.index("days_past_due")]),
        "train_rows": int((~test).sum()), "horizon_days": horizon, "snapshots": k,
        "outcomes_by_lender": {str(lid): int((lender_ids == lid).sum()) for lid in lenders},
    }
    with transaction.atomic():
        ScoreModel.objects.select_for_update().order_by("-version").first()
        row = ScoreModel.objects.create(
            version=_next_version(), kind=ScoreModel.Kind.LOGISTIC, features=learn.feature_names(lenders),
            params=params, metrics=metrics, lenders=lenders, created_by=actor if getattr(actor, "pk", None) else None,
            trained_from=now - timedelta(days=horizon + 30 * (k - 1) + 365), trained_to=now,
        )
        audit_log(action="scoring.model.trained", actor=actor, subject=row, actor_label="" if actor else "system",
                  data={"version": row.version, "auc": metrics["test"].get("auc"),
                        "auc_dpd": metrics["test"].get("auc_dpd"), "brier": metrics["test"].get("brier"),
                        "lenders": lenders})
    return row


def score_model_promote(*, actor, model: ScoreModel) -> ScoreModel:
    """Put ``model`` in use (the previous one is retired); audited in the same transaction."""
    with transaction.atomic():
        model = ScoreModel.objects.select_for_update().get(pk=model.pk)
        if model.status == ScoreModel.Status.PROMOTED:
            return model
        previous = ScoreModel.objects.select_for_update().filter(status=ScoreModel.Status.PROMOTED).first()
        if previous is not None:
            previous.status = ScoreModel.Status.RETIRED
            previous.save(update_fields=["status"])
        model.status = ScoreModel.Status.PROMOTED
        model.promoted_by = actor if getattr(actor, "pk", None) else None
        model.promoted_at = timezone.now()
        model.save(update_fields=["status", "promoted_by", "promoted_at"])
        audit_log(action="scoring.model.promoted", actor=actor, subject=model, actor_label="" if actor else "system",
                  data={"version": model.version, "kind": model.kind,
                        "previous": previous.version if previous else None})
    return model


def _score_batch(batch: FeatureBatch, *, promoted: ScoreModel | None, rules: ScoreModel):
    """Probabilities, model ids, methods and reasons for one batch (vectorised; reasons per row)."""
    n = len(batch)
    p = np.empty(n)
    contrib = np.zeros((n, len(FEATURES)))
    model_ids = np.full(n, rules.pk, dtype=np.int64)
    by_model = np.zeros(n, dtype=bool)
    if promoted is not None and promoted.kind == ScoreModel.Kind.LOGISTIC:
        by_model = np.isin(batch.lender_ids, promoted.lenders)
    if by_model.any():
        pm, cm = learn.predict(promoted.params, batch.X[by_model], batch.lender_ids[by_model])
        p[by_model] = pm
        contrib[by_model] = cm[:, : len(FEATURES)]
        model_ids[by_model] = promoted.pk
    if (~by_model).any():
        pr, cr = learn.rule_predict(batch.X[~by_model])
        p[~by_model] = pr
        contrib[~by_model] = cr
    reasons = reasons_json(contrib, batch.X, batch.balances)
    return p, model_ids, by_model, reasons


def _expected(p: float, balance: str) -> Decimal:
    """Probability x balance, in Decimal cents (the balance arrives as exact text)."""
    return (Decimal(repr(round(p, 6))) * Decimal(balance)).quantize(CENT, rounding=ROUND_HALF_UP)


STAGE_COLUMNS = "account_id, lender_id, model_id, method, probability, expected_recovery, reasons, scored_at"


def _write(rows: list[tuple], *, at: datetime) -> None:
    """Upsert (account_id, lender_id, model_id, method, probability, balance, reasons_json) scored at ``at``."""
    if connection.vendor == "postgresql":
        # COPY into a temporary table, then one INSERT ... ON CONFLICT: far fewer round trips than
        # bulk_create. The staged expected_recovery holds the balance; the INSERT multiplies it by the
        # probability in numeric, so the money is computed exactly by the database.
        stamp = at.isoformat()
        buf = io.StringIO()
        buf.writelines(
            f"{a}\t{lid}\t{mid}\t{method}\t{p!r}\t{bal}\t{reasons.replace(chr(92), chr(92) * 2)}\t{stamp}\n"
            for a, lid, mid, method, p, bal, reasons in rows
        )
        buf.seek(0)
        with connection.cursor() as cur:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS scoring_stage (LIKE scoring_accountscore) ON COMMIT DELETE ROWS")
            cur.copy_expert(f"COPY scoring_stage ({STAGE_COLUMNS}) FROM STDIN", buf)
            cur.execute(
                f"INSERT INTO scoring_accountscore ({STAGE_COLUMNS})"
                " SELECT account_id, lender_id, model_id, method, probability,"
                " round(expected_recovery * probability::numeric(12, 6), 2), reasons, scored_at FROM scoring_stage"
                " ON CONFLICT (account_id) DO UPDATE SET"
                " lender_id = EXCLUDED.lender_id, model_id = EXCLUDED.model_id, method = EXCLUDED.method,"
                " probability = EXCLUDED.probability, expected_recovery = EXCLUDED.expected_recovery,"
                " reasons = EXCLUDED.reasons, scored_at = EXCLUDED.scored_at")
            cur.execute("TRUNCATE scoring_stage")
        return
    import json

    AccountScore.objects.bulk_create(
        [AccountScore(account_id=a, lender_id=lid, model_id=mid, method=method, probability=p,
                      expected_recovery=_expected(p, bal), reasons=json.loads(reasons), scored_at=at)
         for a, lid, mid, method, p, bal, reasons in rows],
        update_conflicts=True, unique_fields=["account"],
        update_fields=["lender_id", "model", "method", "probability", "expected_recovery", "reasons", "scored_at"],
    )


def _writer(q: queue.Queue, at: datetime, errors: list) -> None:
    """Writes batches on its own connection while the caller computes the next one (one commit per batch)."""
    try:
        while (rows := q.get()) is not None:
            if errors:
                continue  # keep draining so the producer never blocks
            try:
                with transaction.atomic():
                    _write(rows, at=at)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
                errors.append(exc)
    finally:
        connection.close()


def scores_refresh(*, account_ids=None, lender_id: int | None = None, now: datetime | None = None,
                   batch_size: int = 50_000, audit: bool = True) -> dict:
    """Score open accounts (all, one lender's, or the given ids) with the model in use, else the rules.

    Features come from one SQL pass (server-side cursor, in batches); the model runs per batch.
    A full refresh on PostgreSQL outside a transaction pipelines: a writer thread (its own connection)
    stores batch n while this thread reads and scores batch n+1, so the database and Python work at
    once; each batch commits on its own (scores are derived data, re-computable at any time).
    Otherwise everything happens in the caller's (or one) transaction.
    """
    now = now or clock.now()
    promoted = ScoreModel.objects.filter(status=ScoreModel.Status.PROMOTED).first()
    rules = rules_model_current()
    if promoted is not None and promoted.kind == ScoreModel.Kind.RULES:
        promoted = None
    counts = {"scored": 0, "by_model": 0, "by_rules": 0}
    scored: set[int] = set()
    pipelined = account_ids is None and connection.vendor == "postgresql" and not connection.in_atomic_block
    errors: list = []
    q: queue.Queue = queue.Queue(maxsize=2)
    writer = threading.Thread(target=_writer, args=(q, now, errors), daemon=True) if pipelined else None
    if writer is not None:
        writer.start()
    try:
        with transaction.atomic():
            for batch in features_iter(as_of=now, account_ids=account_ids, lender_id=lender_id, batch_size=batch_size):
                p, model_ids, by_model, reasons = _score_batch(batch, promoted=promoted, rules=rules)
                methods = np.where(by_model, "model", "rules").tolist()
                rows = list(zip(batch.ids.tolist(), batch.lender_ids.tolist(), model_ids.tolist(), methods,
                                np.round(p, 6).tolist(), batch.balances, reasons, strict=True))
                if writer is not None:
                    q.put(rows)
                else:
                    _write(rows, at=now)
                if account_ids is not None:
                    scored.update(r[0] for r in rows)
                counts["scored"] += len(rows)
                counts["by_model"] += int(by_model.sum())
    finally:
        if writer is not None:
            q.put(None)
            writer.join()
    if errors:
        raise errors[0]
    counts["by_rules"] = counts["scored"] - counts["by_model"]
    with transaction.atomic():
        if account_ids is not None:
            # A given account that is no longer open loses its score (it is no longer worked).
            counts["removed"] = AccountScore.objects.filter(account_id__in=set(account_ids) - scored).delete()[0]
        else:
            # Accounts that left the open statuses keep no stale score (they are no longer worked).
            stale = AccountScore.objects.exclude(account__status__in=_open_statuses())
            if lender_id is not None:
                stale = stale.filter(lender_id=lender_id)
            counts["removed"] = stale.delete()[0]
        if audit:
            # One event per run: a score is derived data (its inputs are audited where they happen),
            # and the row itself records the model version that produced it.
            audit_log(action="scoring.scores.refreshed", lender_id=lender_id, actor_label="system",
                      data={**counts, "model": promoted.version if promoted else None, "rules": rules.version,
                            "accounts": len(account_ids) if account_ids is not None else "all"})
    return counts


def _open_statuses():
    from cases.models import OverdueAccount

    return OverdueAccount.OPEN_STATUSES


def account_score_refresh(*, account_id: int) -> AccountScore | None:
    """Re-score one account after a new outcome (contact attempt, promise, payment). Not audited per call:
    the outcome that triggered it is, and the score row names its model version."""
    scores_refresh(account_ids=[account_id], audit=False)
    return AccountScore.objects.filter(account_id=account_id).first()
