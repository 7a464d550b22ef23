"""Fixed-window counters in Django's cache (Redis when CACHE_URL is set, so every web process
shares them): failed sign-ins per username, public lender sign-ups per client address."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


@dataclass(frozen=True)
class Limit:
    name: str
    setting: str  # settings.<setting> = (max events, window in seconds)

    @property
    def rule(self) -> tuple[int, int]:
        return getattr(settings, self.setting)

    def _key(self, ident: str) -> str:
        return f"throttle:{self.name}:{ident.strip().lower()}"

    def _window_end(self, key: str) -> float | None:
        end = cache.get(f"{key}:end")
        return end if end and end > time.time() else None

    def retry_after(self, *, ident: str) -> int:
        """Seconds until ``ident`` may try again (0: it may now)."""
        limit, _window = self.rule
        key = self._key(ident)
        end = self._window_end(key)
        if end is None or (cache.get(f"{key}:{int(end)}") or 0) < limit:
            return 0
        return max(1, int(end - time.time()))

    def hit(self, *, ident: str) -> int:
        """Count one event; returns the count in the current window.

        Atomic across processes on a shared cache (Redis): the window is opened with ``add`` (only the
        first writer wins) and events are counted with ``incr``, never read-modify-write.
        """
        _limit, window = self.rule
        key, now = self._key(ident), time.time()
        end = self._window_end(key)
        if end is None:
            # A new window starts at the first event; the key lives as long as the window, not longer.
            cache.add(f"{key}:end", now + window, timeout=window)
            end = cache.get(f"{key}:end") or now + window
        count_key = f"{key}:{int(end)}"  # one counter per window, so an old window's count never carries over
        ttl = max(1, int(end - now)) + 1
        cache.add(count_key, 0, timeout=ttl)
        try:
            return cache.incr(count_key)
        except ValueError:  # expired between add and incr
            cache.add(count_key, 1, timeout=ttl)
            return 1

    def reset(self, *, ident: str) -> None:
        key = self._key(ident)
        end = cache.get(f"{key}:end")
        cache.delete_many([f"{key}:end"] + ([f"{key}:{int(end)}"] if end else []))


LOGIN_FAILURES = Limit("login", "THROTTLE_LOGIN_FAILURES")
LENDER_SIGNUPS = Limit("signup", "THROTTLE_LENDER_SIGNUPS")


def _trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request) -> str:
    """The client's address. Behind reverse proxies listed in TRUSTED_PROXIES, it is the right-most
    X-Forwarded-For entry that is not one of them (entries further left are the client's to forge);
    otherwise REMOTE_ADDR, and X-Forwarded-For is ignored."""
    if request is None:
        return ""
    remote = request.META.get("REMOTE_ADDR", "")
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.TRUSTED_PROXIES]
    if not networks or not _trusted(remote, networks):
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else remote
