"""Collection strategies as data (pure code, like compliance.rules): which channel when, by bucket
and score band, plus the stable champion/challenger split.

    {"bands": {"high": 0.5, "medium": 0.2},
     "steps": [{"day": 1, "channel": "sms"},
               {"day": 3, "channel": "call", "bands": ["high", "medium"]},
               {"day": 10, "channel": "letter", "buckets": ["M2", "M3", "M4", "M5", "M6", "M7+"]},
               {"day": 20, "channel": "visit", "min_balance": "20000", "bands": ["high"]}]}

``day`` counts from the later of the account's placement and the experiment's start (day 1 = that
day). A step applies when the account's bucket and score band are listed (omitted = all) and its
balance is at least ``min_balance``. Each day an account gets at most its earliest due step not yet run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

CHANNELS = ("sms", "email", "letter", "call", "visit")
#: Steps the platform performs itself (outreach through the gate); calls and visits go to the agent.
AUTOMATED = ("sms", "email", "letter")
BUCKETS = ("M0", "M1", "M2", "M3", "M4", "M5", "M6", "M7+")
BANDS = ("high", "medium", "low")
#: The example strategy offered when publishing a first version (and seeded in the demo).
DEFAULT_STRATEGY = {
    "bands": {"high": 0.5, "medium": 0.2},
    "steps": [{"day": 1, "channel": "sms"}, {"day": 3, "channel": "call", "bands": ["high", "medium"]},
              {"day": 10, "channel": "letter"}, {"day": 20, "channel": "visit", "min_balance": "20000", "bands": ["high"]}],
}


class StrategyError(ValueError):
    pass


@dataclass(frozen=True)
class Step:
    index: int
    day: int
    channel: str
    buckets: frozenset[str]
    bands: frozenset[str]
    min_balance: Decimal

    def applies(self, *, bucket: str, band: str, balance: Decimal) -> bool:
        return bucket in self.buckets and band in self.bands and balance >= self.min_balance


@dataclass(frozen=True)
class StrategySpec:
    high: float
    medium: float
    steps: tuple[Step, ...]

    @classmethod
    def from_dict(cls, data: dict) -> StrategySpec:
        """Validate on load: a bad strategy is refused whole, with every problem named."""
        errors: list[str] = []
        if not isinstance(data, dict):
            raise StrategyError("a strategy is a JSON object")
        bands = data.get("bands", {"high": 0.5, "medium": 0.2})
        try:
            high, medium = float(bands["high"]), float(bands["medium"])
            if not 0 < medium < high < 1:
                errors.append("bands: need 0 < medium < high < 1")
        except (KeyError, TypeError, ValueError):
            errors.append("bands: need numbers 'high' and 'medium'")
            high, medium = 0.5, 0.2
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            errors.append("steps: need a non-empty list")
            raw_steps = []
        steps = []
        for i, s in enumerate(raw_steps):
            where = f"steps[{i}]"
            if not isinstance(s, dict):
                errors.append(f"{where}: need an object")
                continue
            unknown = set(s) - {"day", "channel", "buckets", "bands", "min_balance"}
            if unknown:
                errors.append(f"{where}: unknown keys {sorted(unknown)}")
            day = s.get("day")
            if not isinstance(day, int) or isinstance(day, bool) or not 1 <= day <= 365:
                errors.append(f"{where}.day: need a whole number of days from 1 to 365")
                day = 1
            if s.get("channel") not in CHANNELS:
                errors.append(f"{where}.channel: need one of {', '.join(CHANNELS)}")
            buckets = s.get("buckets", list(BUCKETS))
            if not isinstance(buckets, list) or not set(buckets) <= set(BUCKETS) or not buckets:
                errors.append(f"{where}.buckets: need a list from {', '.join(BUCKETS)}")
                buckets = []
            sb = s.get("bands", list(BANDS))
            if not isinstance(sb, list) or not set(sb) <= set(BANDS) or not sb:
                errors.append(f"{where}.bands: need a list from {', '.join(BANDS)}")
                sb = []
            try:
                min_balance = Decimal(str(s.get("min_balance", "0")))
                if min_balance < 0 or not min_balance.is_finite():
                    raise InvalidOperation
            except (InvalidOperation, ValueError):
                errors.append(f"{where}.min_balance: need an amount of 0 or more")
                min_balance = Decimal("0")
            steps.append(Step(index=i, day=day, channel=s.get("channel", ""), buckets=frozenset(buckets),
                              bands=frozenset(sb), min_balance=min_balance))
        if errors:
            raise StrategyError("; ".join(errors))
        return cls(high=high, medium=medium, steps=tuple(sorted(steps, key=lambda st: (st.day, st.index))))

    def band(self, probability: float | None) -> str:
        if probability is None:
            return "low"  # unscored: the cheapest treatment until a score exists
        return "high" if probability >= self.high else ("medium" if probability >= self.medium else "low")

    def next_step(self, *, day: int, bucket: str, probability: float | None, balance: Decimal,
                  done: set[int]) -> Step | None:
        """The earliest step due by ``day`` that applies to the account and has not run yet."""
        band = self.band(probability)
        for step in self.steps:
            if step.day > day:
                return None
            if step.index not in done and step.applies(bucket=bucket, band=band, balance=balance):
                return step
        return None


# ---- champion / challenger ------------------------------------------------------------------

HOLDOUT, CHAMPION, CHALLENGER = "holdout", "champion", "challenger"


def arm_unit(*, seed: str, account_id: int) -> float:
    """A stable uniform number in [0, 1) per (seed, account): SHA-256, never Python's salted hash()."""
    digest = hashlib.sha256(f"{seed}:{account_id}".encode()).hexdigest()
    return int(digest[:13], 16) / 16**13


def arm_for(*, seed: str, account_id: int, challenger_share: float, holdout_share: float,
            has_challenger: bool = True) -> str:
    u = arm_unit(seed=seed, account_id=account_id)
    if u < holdout_share:
        return HOLDOUT
    if has_challenger and u < holdout_share + challenger_share:
        return CHALLENGER
    return CHAMPION
