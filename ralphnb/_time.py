"""Clock helpers: now in UTC, and RFC 3339 timestamps as ralph writes and reads them.

Owns: the one definition of "now" and of the timestamp format shared by the queue files, the
lock's owner file and the run journal. Invariants: every datetime returned is timezone-aware
UTC; every string written ends in `Z`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Timezone-aware now in UTC (microsecond precision)."""
    return datetime.now(UTC)


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with a `Z`, as ralph writes timestamps."""
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(s: str) -> datetime:
    """Parse an RFC 3339 timestamp (with `Z` or an offset) into an aware UTC datetime."""
    text = s.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python accepts at most 6 fractional digits; ralph may write 9.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{frac[:6].ljust(6, '0')}{tail}" if frac else head + tail
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise ValueError(f"timestamp {s!r} has no timezone; write it in UTC with a trailing Z")
    return t.astimezone(UTC)
