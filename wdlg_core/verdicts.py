"""The one verdict vocabulary of the book.

A page decides each of the paper's claims it checks with one of the page verdicts below (some
pages also use :data:`PARTLY` and :data:`TIE`); the replication summary maps them onto its
five :data:`VERDICTS` (:func:`normalise`), and every page and the summary colour them with
:data:`COLOURS`.
"""
from __future__ import annotations

#: The page verdicts: our interval (or paired test) is on the paper's side, against it, or
#: cannot tell at this number of attacks.
HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
#: Page-specific nuances: part of a compound claim holds; a paired comparison ended even.
PARTLY, TIE = "partly", "tie"
#: The summary's wording of INCONCLUSIVE (it says why: the scale), and its two verdicts for a
#: claim that cannot be compared with the paper or whose page has not been run.
INCONCLUSIVE_AT_SCALE = "inconclusive at this scale"
NOT_COMPARABLE, NOT_RUN = "not comparable", "not run"
#: Every verdict of the replication summary, in display order.
VERDICTS = (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE_AT_SCALE, NOT_COMPARABLE, NOT_RUN)
#: Fill colour of each summary verdict (figures, tables, the pages' verdict lists).
COLOURS = {HOLDS: "#74c476", DOES_NOT_HOLD: "#fb6a4a", INCONCLUSIVE_AT_SCALE: "#fed976",
           NOT_COMPARABLE: "#bcbddc", NOT_RUN: "#d9d9d9"}


def normalise(text: str | None) -> str:
    """Map a page's verdict wording onto :data:`VERDICTS`.

    ``"holds"``/``"supports"``/``"holds on every pair"`` -> holds; ``"does not hold"``/
    ``"does not support"`` -> does not hold; ``"inconclusive"``/``"is inconclusive about"``/
    ``"no interval"``/``"partly"`` -> inconclusive at this scale. A leading verdict followed by
    details (``"holds (1.9e-01 vs 2.3e-01)"``) is accepted.

    Raises:
        ValueError: any other text (the message lists the accepted wordings).
    """
    t = (text or "").strip().lower()
    if t.startswith(("does not hold", "does not support")):
        return DOES_NOT_HOLD
    if t.startswith(("holds", "supports")):
        return HOLDS
    if t.startswith(("inconclusive", "is inconclusive", "no interval", PARTLY)):
        return INCONCLUSIVE_AT_SCALE
    raise ValueError(f"unknown verdict {text!r}: expected one of holds, does not hold, supports, "
                     "does not support, inconclusive, is inconclusive about, no interval, partly")
