"""The company's local time: the zone of every schedule, every day a message speaks of and every time it
shows. Written once, here."""

from __future__ import annotations

from zoneinfo import ZoneInfo

TIMEZONE = "Asia/Shanghai"
LOCAL_TZ = ZoneInfo(TIMEZONE)
