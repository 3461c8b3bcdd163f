"""WeCom's per-member sending windows: an app's 31st message a minute (1,001st an hour) to one member is
dropped without an error, so senders plan every slot against every slot already taken."""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class MemberLimits:
    """WeCom's per-app, per-member windows; ``time_scale`` shrinks them for tests and benchmarks."""

    per_minute: int = 30
    per_hour: int = 1000
    time_scale: float = 1.0
    margin: float = 0.03  # keep clear of the window edges: arrival times differ from reservation times
    margin_seconds: float = 0.05  # and of clock-offset error between this machine and the database
    max_wait: float = 90.0  # longer than this (scaled seconds) and the message is deferred instead

    @property
    def minute(self) -> float:
        return 60.0 / self.time_scale * (1 + self.margin) + self.margin_seconds

    @property
    def hour(self) -> float:
        return 3600.0 / self.time_scale * (1 + self.margin) + self.margin_seconds

    def next_slot(self, taken: list[float], now: float) -> float:
        """The earliest time >= now at which one more message keeps every window under its limit.

        ``taken`` (sorted) holds every reserved slot, future ones included (other senders' too), so a
        window around the new slot counts messages on both sides of it.
        """
        slot = now
        while True:
            frees = [
                free
                for window, limit in ((self.minute, self.per_minute), (self.hour, self.per_hour))
                if (free := _frees_at(taken, slot, window, limit)) is not None
            ]
            if not frees:
                return slot
            slot = max(slot, min(frees)) + 1e-3  # step past the earliest message of a full window


def _frees_at(taken: list[float], slot: float, window: float, limit: int) -> float | None:
    """When the earliest message of a full window around ``slot`` leaves it; None while it has room."""
    lo = bisect.bisect_right(taken, slot - window)
    hi = bisect.bisect_left(taken, slot + window)
    return taken[lo] + window if hi - lo >= limit else None
