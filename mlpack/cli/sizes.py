"""Byte counts for people: ``812 B``, ``4.2 kB``, ``51.3 MB``, ``1.20 GB`` (decimal units)."""

from __future__ import annotations

_UNITS = ("kB", "MB", "GB", "TB")


def human_size(size: int) -> str:
    """``size`` bytes with the largest unit that keeps the number at or above 1."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1000
        if value < 1000 or unit == _UNITS[-1]:
            return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
