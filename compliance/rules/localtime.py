"""Wall-clock helpers: which UTC instants have a given local date and wall-clock time range.

Everything is exact around DST changes: a local time range on a date is mapped to UTC per
constant-offset segment of that date, so gaps (spring forward) and repeats (fall back) are honoured.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_SECOND = timedelta(seconds=1)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; ValueError for anything unknown."""
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"Unknown time zone {name!r}.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"Unknown time zone {name!r}.") from exc


def offset_at(tz: ZoneInfo, instant: datetime) -> timedelta:
    return instant.astimezone(tz).utcoffset()  # type: ignore[return-value]


def wall(tz: ZoneInfo, instant: datetime) -> datetime:
    """Naive local wall-clock time of an aware instant."""
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def _transition(tz: ZoneInfo, lo: datetime, hi: datetime, off_lo: timedelta) -> datetime:
    """First instant in (lo, hi] whose offset differs from ``off_lo`` (offsets differ at lo and hi)."""
    lo_s = int(lo.timestamp())
    hi_s = int(hi.timestamp()) + 1
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if offset_at(tz, datetime.fromtimestamp(mid, UTC)) == off_lo:
            lo_s = mid
        else:
            hi_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


@lru_cache(maxsize=8192)
def local_intervals(tz: ZoneInfo, day: date, start_min: int, end_min: int) -> tuple[tuple[datetime, datetime], ...]:
    """UTC half-open intervals of the instants whose local wall clock lies in
    [day + start_min, day + end_min) (minutes after local midnight, end_min may be 1440)."""
    midnight = datetime.combine(day, time())
    ns = midnight + timedelta(minutes=start_min)
    ne = midnight + timedelta(minutes=end_min)
    offsets = {tz.utcoffset(x.replace(fold=f)) for x in (ns, ne) for f in (0, 1)}
    lo = (ns - max(offsets)).replace(tzinfo=UTC)
    hi = (ne - min(offsets)).replace(tzinfo=UTC)
    off_lo, off_hi = offset_at(tz, lo), offset_at(tz, hi)
    if off_lo == off_hi:
        segments = [(lo, hi, off_lo)]
    else:
        cut = _transition(tz, lo, hi, off_lo)
        segments = [(lo, cut, off_lo), (cut, hi, off_hi)]
    out: list[tuple[datetime, datetime]] = []
    for seg_start, seg_end, off in segments:
        a = max(seg_start, (ns - off).replace(tzinfo=UTC))
        b = min(seg_end, (ne - off).replace(tzinfo=UTC))
        if a < b:
            if out and out[-1][1] >= a:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
    return tuple(out)


def day_start(tz: ZoneInfo, day: date) -> datetime:
    """First UTC instant whose local date is ``day`` (or a later date, if a zone skipped ``day``)."""
    for i in range(3):
        spans = local_intervals(tz, day + timedelta(days=i), 0, 1440)
        if spans:
            return spans[0][0]
    raise ValueError(f"Time zone {tz.key} has no local date {day.isoformat()}.")


def fmt_local(tz: ZoneInfo, instant: datetime) -> str:
    """e.g. 'Tue 11 Mar 2025 21:00 (America/New_York)'."""
    local = instant.astimezone(tz)
    return f"{local:%a %d %b %Y %H:%M} ({tz.key})"


def fmt_date(day: date) -> str:
    return f"{day:%a %d %b %Y}"
