"""Grant constraints: ISO-8601 periods for rate caps and time-zone-aware quiet hours.

Pure functions over integer UTC seconds; the caller passes ``now``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from . import errors

# Only fixed-length units: years and months have no fixed length, so P1M is refused.
# ASCII digits only and matched with fullmatch: Python's \d also matches other scripts'
# digits and its $ matches before a final newline, so "P١D" or "P1D\n" would pass.
_PERIOD = re.compile(
    r"P(?:(?P<w>[0-9]{1,4})W)?(?:(?P<d>[0-9]{1,4})D)?"
    r"(?:T(?:(?P<h>[0-9]{1,5})H)?(?:(?P<m>[0-9]{1,6})M)?(?:(?P<s>[0-9]{1,8})S)?)?"
)
_CLOCK = re.compile(r"(?P<h>[0-9]{2}):(?P<m>[0-9]{2})")
MAX_PERIOD_LENGTH = 32
MAX_ZONE_LENGTH = 64
MAX_PERIOD_SECONDS = 366 * 86400


@lru_cache(maxsize=1024)
def period_seconds(period: str) -> int:
    """Length in seconds of an ISO-8601 duration made of W, D, H, M, S designators.

    Raises :class:`~rapport_protocol.errors.InvalidPeriod` for anything else (including
    years, months, fractions, non-ASCII digits, trailing characters, an empty ``P``/``PT``,
    more than 32 characters or a length over 366 days).
    """
    match = _PERIOD.fullmatch(period) if len(period) <= MAX_PERIOD_LENGTH else None
    if match is None or period in ("P", "PT") or period.endswith("T"):
        raise errors.InvalidPeriod(f"{period!r} is not a W/D/H/M/S ISO-8601 duration")
    parts = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    seconds = (
        parts["w"] * 604800 + parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    )
    if not 0 < seconds <= MAX_PERIOD_SECONDS:
        raise errors.InvalidPeriod("period must be longer than 0 s and at most 366 days")
    return seconds


@cache
def _known_zones() -> frozenset[str]:
    # The zones of the IANA database as installed, not whatever file ZoneInfo can open:
    # "localtime" and "posixrules" are links a system adds, and ZoneInfo would also read
    # "posix/…" and "right/…" copies, so the verdict would depend on the machine.
    return frozenset(available_timezones() - {"localtime", "posixrules"})


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; raises ``InvalidTimeZone`` when unknown."""
    if not 0 < len(name) <= MAX_ZONE_LENGTH or name not in _known_zones():
        raise errors.InvalidTimeZone(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a directory such as "Europe" is not a zone.
        raise errors.InvalidTimeZone(f"unknown time zone {name!r}") from None


def parse_clock(text: str) -> int:
    """Minutes after midnight for ``HH:MM`` (24-hour, ASCII digits)."""
    match = _CLOCK.fullmatch(text)
    if match is None:
        raise errors.InvalidBody(f"{text!r} is not HH:MM")
    hours, minutes = int(match["h"]), int(match["m"])
    if hours > 23 or minutes > 59:
        raise errors.InvalidBody(f"{text!r} is not a time of day")
    return hours * 60 + minutes


def quiet_remaining(start: str, end: str, tz: str, now: int) -> int:
    """Seconds until quiet hours end, or 0 when ``now`` is outside them.

    The window ``[start, end)`` is local wall-clock time in ``tz`` and may cross midnight
    (``22:00``–``07:00``). ``start == end`` means no quiet hours.
    """
    begin, finish = parse_clock(start), parse_clock(end)
    if begin == finish:
        return 0
    local = datetime.fromtimestamp(now, tz=zone(tz))
    minute = local.hour * 60 + local.minute
    inside = begin <= minute < finish if begin < finish else minute >= begin or minute < finish
    if not inside:
        return 0
    # Walk wall-clock time forward to the end of the window, then back to UTC so DST
    # transitions inside the window are handled by zoneinfo, not by arithmetic here.
    end_day = local.date() if minute < finish else local.date() + timedelta(days=1)
    end_local = datetime(
        end_day.year, end_day.month, end_day.day, finish // 60, finish % 60, tzinfo=zone(tz)
    )
    remaining = int(end_local.astimezone(UTC).timestamp()) - now
    return max(remaining, 1)
