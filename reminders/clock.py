"""Reminders read time through the shared controllable clock (see servicing/clock.py)."""

from servicing.clock import localdate, now, set_clock

__all__ = ["localdate", "now", "set_clock"]
