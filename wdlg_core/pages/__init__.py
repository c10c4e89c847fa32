"""The book's pages: one module per notebook, named like the notebook.

Every page module has

* ``jobs(profile, **params) -> list[Job]``: the attacks the page needs under ``profile``
  (a name or a :class:`wdlg_core.profiles.Profile`) and the notebook's own parameters
  (``params``: the names of the notebook's ``parameters`` cell, None meaning "the profile's
  value"). It is pure: it reads images and builds configurations, and computes no attack.
  The notebook asks for exactly these jobs when it runs, so once the planner
  (:mod:`wdlg_core.plan`) has stored them the notebook only renders.

Pages without attacks (Table 1, the replication summary) return an empty list.
"""
from __future__ import annotations

import importlib

#: The pages, in the book's order (the manifest's names).
PAGE_NAMES = (
    "fig03_inversion_gallery", "architectures", "fig05_loss_curves", "tab01_settings", "fig06_mse_curves",
    "fig07_first_loss", "tab05_ablation", "tab02_success_time", "fig04_inversion_gallery_cnn6",
    "tab04_batch_size", "tab03_method_comparison", "fig08_10_recovery", "sensitivity",
    "fig11_14_noise_defense", "defense_tradeoff", "replication_summary",
)


def get_page(name: str):
    """The page module of ``name``.

    Raises:
        ValueError: an unknown page (the message lists the valid names).
    """
    if name not in PAGE_NAMES:
        raise ValueError(f"unknown page {name!r}; valid pages: {', '.join(PAGE_NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def page_jobs(name: str, profile, **params) -> list:
    """``get_page(name).jobs(profile, **params)``: the attacks page ``name`` needs.

    Raises:
        ValueError: an unknown page, or a parameter the page does not take (the message
            lists the page's parameters).
    """
    import inspect

    page = get_page(name)
    accepted = inspect.signature(page.jobs).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"page {name!r} takes no parameter(s) {unknown}; its parameters: "
                         f"{', '.join(p for p in accepted if p != 'profile')}")
    return page.jobs(profile, **params)
