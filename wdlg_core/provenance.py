"""Provenance: which code, library versions and machine produced a result.

Every stored attack and every notebook results file carries :func:`provenance`, so a number on
a book page can be traced back to a commit, a torch build and a device.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

#: Root of the source tree (the folder holding ``wdlg_core/``).
REPO_ROOT = Path(__file__).resolve().parent.parent


def package_version() -> str:
    """Version of ``wdlg_core``: ``wdlg_core.__version__`` if set, else the installed
    distribution's metadata (``wdlg-core``), else the ``version`` line of ``pyproject.toml``,
    else ``"unknown"``. The results store hashes it into every record's key."""
    import wdlg_core

    version = getattr(wdlg_core, "__version__", None)
    if version:
        return str(version)
    try:
        return metadata.version("wdlg-core")
    except metadata.PackageNotFoundError:
        pass
    return _pyproject_version()


@lru_cache(maxsize=1)
def _pyproject_version() -> str:
    path = REPO_ROOT / "pyproject.toml"
    try:
        import tomllib

        return str(tomllib.loads(path.read_text())["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "unknown"


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_commit(short: bool = True) -> str:
    """Commit of the source tree (short hash), with ``+dirty`` when tracked files have
    uncommitted changes; ``"unknown"`` outside a git work tree or without git."""
    try:
        rev = ["git", "-C", str(REPO_ROOT), "rev-parse"] + (["--short"] if short else []) + ["HEAD"]
        commit = subprocess.run(rev, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if status else (commit or "unknown")


def device_name(device: str) -> str:
    """Human-readable name of a torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``)."""
    if str(device).startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(torch.device(device))
        except Exception:  # a broken CUDA setup should not stop provenance
            pass
        return "cuda (unavailable)"
    return platform.processor() or platform.machine() or "cpu"


def provenance(device: str = "cpu") -> dict:
    """Where and with what a result was computed.

    Args:
        device: the torch device string the computation ran on.

    Returns:
        JSON-able dict: ``wdlg_core`` version, git commit (short, ``"unknown"`` outside a git
        tree), torch and torchvision versions (distribution metadata: torchvision is not
        imported), python version, device and its name, torch threads, CPU count, platform,
        and the UTC date (ISO 8601).
    """
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:
        threads = None
    return {
        "wdlg_core": package_version(),
        "git_commit": git_commit(),
        "torch": _dist_version("torch"),
        "torchvision": _dist_version("torchvision"),
        "python": platform.python_version(),
        "device": str(device),
        "device_name": device_name(device),
        "torch_threads": threads,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
