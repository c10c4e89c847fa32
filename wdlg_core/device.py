"""Where attacks run: the torch device and its thread count, checked before any work starts."""
from __future__ import annotations

import os

#: Environment variable read by :func:`configure_threads` (``wdlg run`` sets it per notebook).
THREADS_ENV = "WDLG_TORCH_THREADS"


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count from ``threads`` or ``$WDLG_TORCH_THREADS``.

    ``wdlg run`` executes several notebooks in parallel and gives each a share of the cores
    through this variable. Without either, torch's default is kept. Returns the count in use.
    """
    import torch

    threads = threads or int(os.environ.get(THREADS_ENV, "0") or 0)
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def check_device(device: str) -> str:
    """Return ``device`` if torch can use it.

    Raises:
        ValueError: a CUDA device while torch sees none (the message says to pass cpu), a
            device string torch does not understand, or a device type this build cannot use.
    """
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r} ({err}); valid examples: cpu, cuda, cuda:0") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested, but torch {torch.__version__} sees no CUDA device here; "
                         "use --device cpu")
    try:  # a device type this torch build cannot use (mps without Metal, xpu, ...)
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"device {device!r} is not usable with torch {torch.__version__} here ({first}); "
                         "valid choices: cpu, cuda (with a CUDA build and a GPU)") from None
    return str(device)
