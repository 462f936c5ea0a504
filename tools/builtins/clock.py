"""Time conversion between IANA time zones."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from troupe.runtime.errors import ToolArgumentError
from troupe.tools.spec import tool


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        close = sorted(z for z in available_timezones() if name.strip().lower().split("/")[-1] in z.lower())[:5]
        hint = f"; did you mean {', '.join(close)}?" if close else " (use an IANA name like 'Europe/Paris')"
        raise ToolArgumentError(f"unknown time zone {name!r}{hint}", tool="convert_time") from None


@tool(level="L0", idempotent=True, timeout_s=5, execution="inline", source="builtin")
def convert_time(time: str, source_timezone: str, target_timezone: str) -> str:
    """Convert a time of day (HH:MM, 24-hour) from one time zone to another, today.

    Args:
        time: Time in the source zone, e.g. "12:00".
        source_timezone: IANA zone name, e.g. "UTC" or "America/New_York".
        target_timezone: IANA zone name, e.g. "Asia/Kolkata".
    """
    src, dst = _zone(source_timezone), _zone(target_timezone)
    try:
        hour, minute = (int(p) for p in time.strip().split(":")[:2])
        moment = datetime.now(src).replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError:
        raise ToolArgumentError(f"time must be HH:MM (24-hour), got {time!r}", tool="convert_time") from None
    converted = moment.astimezone(dst)
    day = "" if converted.date() == moment.date() else (" (next day)" if converted.date() > moment.date() else " (previous day)")
    return f"{moment:%H:%M} in {source_timezone} is {converted:%H:%M} in {target_timezone}{day}"


TOOLS = [convert_time]
