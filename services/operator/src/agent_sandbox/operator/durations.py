"""Go-style duration strings (``"90s"``, ``"2m"``, ``"1h30m"``, ``"0"``).

The CRDs and the REST API carry durations the way the reference (Go)
implementation wrote them, while pod annotations carry integer seconds; one
parser keeps both sides consistent.
"""

from __future__ import annotations

import functools
import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")


class InvalidDuration(ValueError):
    """A string that is not a Go-style duration."""


def parse_duration(value: str) -> float:
    """Seconds in ``value``; raises :class:`InvalidDuration`."""
    return _parse(value if isinstance(value, str) else "")


@functools.lru_cache(maxsize=256)  # every claim parses its pool's few timeouts again
def _parse(value: str) -> float:
    text = value.strip()
    if text == "0":
        return 0.0
    if not text:
        raise InvalidDuration("duration must be a non-empty string such as '90s', '2m' or '1h30m'")
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise InvalidDuration(f"invalid duration {value!r}: use a number with a unit (ns, us, ms, s, m, h)")
    return total


def format_duration(seconds: float) -> str:
    """Shortest Go-style form of a whole number of seconds (``0`` for zero)."""
    whole = round(seconds)
    if whole <= 0:
        return "0"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs:
        out += f"{secs}s"
    return out


def optional_duration(value: str | None) -> float | None:
    """Seconds of an optional duration field; ``None`` when absent or empty."""
    if value is None or value == "":
        return None
    return parse_duration(value)
