"""How numbers read on the pages: one formatter for a value, one for a value with its interval.

Every page formats its tables and glued sentences with these two functions, so a missing value
reads the same everywhere.
"""
from __future__ import annotations

import math


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def num(v, spec: str = "{:.3g}", missing: str = "-") -> str:
    """``spec.format(v)``, or ``missing`` when ``v`` is None, NaN or infinite.

    Example: ``num(0.5, "{:.0%}") == "50%"``, ``num(float("nan")) == "-"``.
    """
    return spec.format(v) if _finite(v) else missing


def interval(v, low, high, spec: str = "{:.2e}", missing: str = "-") -> str:
    """``"v [low, high]"`` with each number formatted by ``spec``; the point value alone when
    the interval is missing (None or not finite); ``missing`` when ``v`` is.

    Example: ``interval(0.19, 0.18, 0.2, "{:.2f}") == "0.19 [0.18, 0.20]"``.
    """
    if not _finite(v):
        return missing
    if not (_finite(low) and _finite(high)):
        return spec.format(v)
    return f"{spec.format(v)} [{spec.format(low)}, {spec.format(high)}]"


__all__ = ["interval", "num"]
