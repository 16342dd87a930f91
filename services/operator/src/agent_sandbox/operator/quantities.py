"""Kubernetes resource quantities (``500m``, ``2``, ``512Mi``, ``1G``) as exact decimals.

Needed to apply a template's resource multiplier and to report a sandbox's
cpu/memory; ``Decimal`` keeps ``0.1 * 3`` exact.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_RE = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([a-zA-Z]*)$")


class InvalidQuantity(ValueError):
    pass


def parse_quantity(value: str | int | float) -> Decimal:
    text = str(value).strip()
    match = _RE.match(text)
    if not match or match.group(2) not in _SUFFIX:
        raise InvalidQuantity(f"invalid resource quantity {value!r}")
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    except InvalidOperation as exc:
        raise InvalidQuantity(f"invalid resource quantity {value!r}") from exc


def format_cpu(cores: Decimal) -> str:
    milli = int((cores * 1000).to_integral_value())
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def format_memory(nbytes: Decimal) -> str:
    whole = int(nbytes.to_integral_value())
    for suffix in ("Gi", "Mi", "Ki"):
        unit = int(_SUFFIX[suffix])
        if whole >= unit and whole % unit == 0:
            return f"{whole // unit}{suffix}"
    return str(whole)


def scale_quantity(resource: str, value: str, factor: Decimal) -> str:
    amount = parse_quantity(value) * factor
    return format_cpu(amount) if resource == "cpu" else format_memory(amount)
