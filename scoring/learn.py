"""Training and batch scoring: scikit-learn fits, numpy scores.

The fitted model is kept as plain numbers (standardisation, coefficients, intercept, Platt
calibration), so scoring a million rows is a few matrix operations and every score can be
explained exactly: a feature's contribution is its coefficient times its standardised value.

The rule score (cold start) is the same shape of explanation, with hand-set points.
"""

from __future__ import annotations

import numpy as np

from .features import FEATURES, NEVER_DAYS

RANDOM_STATE = 20260101


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


def design(X: np.ndarray, lender_ids: np.ndarray, lenders: list[int]) -> np.ndarray:
    """Features plus one indicator column per modelled lender (pooled model, lender as a feature)."""
    if not lenders:
        return X
    onehot = (lender_ids[:, None] == np.asarray(lenders, dtype=np.int64)[None, :]).astype(np.float64)
    return np.hstack([X, onehot])


def feature_names(lenders: list[int]) -> list[str]:
    return list(FEATURES) + [f"lender:{lid}" for lid in lenders]


def split_mask(ids: np.ndarray, *, test_share: float = 0.25, seed: int = RANDOM_STATE) -> np.ndarray:
    """True for held-out rows: a stable hash of the account id, so every snapshot of an account
    falls on the same side (no account is both trained on and tested on)."""
    h = (ids.astype(np.uint64) * np.uint64(2654435761) + np.uint64(seed)) % np.uint64(10_000)
    return h < np.uint64(int(test_share * 10_000))


def fit(X: np.ndarray, y: np.ndarray, *, lender_ids: np.ndarray, lenders: list[int]) -> dict:
    """Logistic regression on standardised features, then Platt calibration on a separate fold."""
    from sklearn.linear_model import LogisticRegression

    D = design(X, lender_ids, lenders)
    mean = D.mean(axis=0)
    scale = D.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (D - mean) / scale
    rng = np.random.default_rng(RANDOM_STATE)
    calib = rng.random(len(y)) < 0.25
    if calib.all() or not calib.any() or len(set(y[~calib])) < 2 or len(set(y[calib])) < 2:
        calib = np.zeros(len(y), dtype=bool)  # too little data to hold a fold back: identity calibration
    lr = LogisticRegression(C=1.0, max_iter=500)
    lr.fit(Z[~calib], y[~calib])
    a, b = 1.0, 0.0
    if calib.any():
        platt = LogisticRegression(C=1e6, max_iter=500)
        platt.fit(lr.decision_function(Z[calib]).reshape(-1, 1), y[calib])
        a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    return {
        "mean": mean.tolist(), "scale": scale.tolist(), "coef": lr.coef_[0].tolist(),
        "intercept": float(lr.intercept_[0]), "calib_a": a, "calib_b": b, "lenders": list(lenders),
    }


def predict(params: dict, X: np.ndarray, lender_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities and per-feature contributions to the logit (rows x features)."""
    D = design(X, lender_ids, params["lenders"])
    Z = (D - np.asarray(params["mean"])) / np.asarray(params["scale"])
    contrib = Z * np.asarray(params["coef"])
    logit = contrib.sum(axis=1) + params["intercept"]
    p = _sigmoid(params["calib_a"] * logit + params["calib_b"])
    # Calibration is monotone (a > 0 on any sane fit), so contributions keep their meaning and sign.
    return p, contrib * (params["calib_a"] if params["calib_a"] > 0 else 1.0)


def metrics(y: np.ndarray, p: np.ndarray, dpd: np.ndarray) -> dict:
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    out = {"n": int(len(y)), "positives": int(y.sum())}
    if len(set(y.tolist())) < 2:
        return out
    out["auc"] = round(float(roc_auc_score(y, p)), 4)
    # Baseline: rank by days past due alone (fewer days = more likely to pay).
    out["auc_dpd"] = round(float(roc_auc_score(y, -dpd)), 4)
    out["brier"] = round(float(brier_score_loss(y, p)), 4)
    out["log_loss"] = round(float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6))), 4)
    bins = np.clip((p * 10).astype(int), 0, 9)
    out["calibration"] = [
        {"bin": f"{i / 10:.1f}-{(i + 1) / 10:.1f}", "n": int((bins == i).sum()),
         "predicted": round(float(p[bins == i].mean()), 3), "observed": round(float(y[bins == i].mean()), 3)}
        for i in range(10) if (bins == i).any()
    ]
    return out


# ---- the rule score (cold start) ---------------------------------------------------------------
# Points on the probability scale, each tied to one feature so the reason shown is the rule applied.

RULE_BASE = 0.30


def rule_points(x: np.ndarray) -> np.ndarray:
    """Points per feature (rows x FEATURES); the score is RULE_BASE plus their sum, clipped."""
    f = {name: x[:, i] for i, name in enumerate(FEATURES)}
    pts = np.zeros_like(x)
    col = {name: i for i, name in enumerate(FEATURES)}
    pts[:, col["promises_kept"]] = np.minimum(f["promises_kept"], 3) * 0.10
    pts[:, col["promises_broken"]] = -np.minimum(f["promises_broken"], 3) * 0.08
    recent = f["days_since_contact"]
    pts[:, col["days_since_contact"]] = np.where(recent <= 14, 0.10, np.where(recent > 30, -0.10, 0.0))
    pts[:, col["days_since_payment"]] = np.where(f["days_since_payment"] <= 30, 0.12, 0.0)
    pts[:, col["days_past_due"]] = -np.minimum(f["days_past_due"], 360) / 360 * 0.25
    pts[:, col["wrong_numbers"]] = np.where(f["wrong_numbers"] > 0, -0.08, 0.0)
    pts[:, col["refusals_90d"]] = -np.minimum(f["refusals_90d"], 2) * 0.05
    pts[:, col["inbound_90d"]] = np.where(f["inbound_90d"] > 0, 0.05, 0.0)
    return pts


def rule_predict(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pts = rule_points(X)
    return np.clip(RULE_BASE + pts.sum(axis=1), 0.02, 0.95), pts


__all__ = ["NEVER_DAYS", "design", "feature_names", "fit", "metrics", "predict", "rule_predict", "split_mask"]
