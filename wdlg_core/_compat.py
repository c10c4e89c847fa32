"""Make ``import torchvision`` work next to the CPU-only torch wheel.

Why: the PyPI ``torchvision==0.28.0`` wheel is built against CUDA.  Next to the CPU build of
``torch==2.13.0`` its compiled extension ``torchvision/_C.so`` cannot be loaded (it links to
``libtorch_cuda.so``), so the operators it would define never exist, and ``import torchvision``
dies inside ``torchvision/_meta_registrations.py`` with::

    RuntimeError: operator torchvision::nms does not exist

because that module registers fake (meta) kernels for ``torchvision::nms`` and
``torchvision::qnms`` at import time.  Those two are the only operators the import of
``torchvision``, ``torchvision.datasets`` and ``torchvision.models`` requires.

What: :func:`ensure_torchvision` (call it, or import this module, before torchvision) first
tries to load torchvision's own extension, exactly as torchvision would.  If that works (a
matching CUDA or CPU install) nothing else happens.  If it fails, it defines the two operators
in the ``torchvision`` namespace with :mod:`torch.library` and gives them a pure-PyTorch CPU
kernel (greedy non-maximum suppression, :func:`nms_reference`), then imports torchvision.
Calling it again is a no-op (idempotent).

Limits of the fallback (none matter to this project, which uses no detection ops):

- ``torchvision.extension._has_ops()`` stays ``False``: the public wrappers in
  ``torchvision.ops`` (``nms``, ``roi_align``, ``deform_conv2d``, ...) still raise
  torchvision's "Couldn't load custom C++ ops" error.  The fallback kernel is reachable as
  ``torch.ops.torchvision.nms`` (what the wrappers call).
- ``torchvision.io``'s image decoders (``image.so``) are missing too; decode images with PIL
  (``torchvision.datasets`` already does).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

import torch

__all__ = ["ensure_torchvision", "extension_loaded", "fallback_registered", "nms_reference"]

# The torch.library.Library holding our definitions must stay alive: registrations are removed
# when it is garbage collected.
_LIB: torch.library.Library | None = None
_EXTENSION_LOADED: bool | None = None


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression in plain PyTorch (CPU fallback for ``torchvision::nms``).

    Follows torchvision's CPU kernel (``torchvision/csrc/ops/cpu/nms_kernel.cpp``): visit boxes
    in decreasing score order, keep a box unless it was suppressed, then suppress every later
    box whose IoU with it is strictly greater than ``iou_threshold``.

    Args:
        boxes: ``(N, 4)`` float tensor of ``(x1, y1, x2, y2)`` corners, ``x1 <= x2``, ``y1 <= y2``.
        scores: ``(N,)`` tensor, same dtype as ``boxes``.
        iou_threshold: boxes with IoU > this value (in [0, 1]) are discarded.

    Returns:
        ``(K,)`` int64 tensor of kept indices, sorted by decreasing score.

    Raises:
        RuntimeError: wrong shapes or mismatched dtypes (same checks as the C++ kernel).
    """
    if boxes.dim() != 2 or boxes.size(1) != 4:
        raise RuntimeError(f"boxes should be a (N, 4) tensor, got shape {tuple(boxes.shape)}")
    if scores.dim() != 1 or scores.size(0) != boxes.size(0):
        raise RuntimeError(
            f"scores should be a 1d tensor with {boxes.size(0)} elements, got shape {tuple(scores.shape)}"
        )
    if boxes.dtype != scores.dtype:
        raise RuntimeError(f"boxes ({boxes.dtype}) and scores ({scores.dtype}) must have the same dtype")
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)

    x1, y1, x2, y2 = boxes.unbind(1)  # each (N,)
    areas = (x2 - x1) * (y2 - y1)  # (N,)
    order = scores.argsort(descending=True)  # (N,)
    suppressed = torch.zeros(boxes.size(0), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)  # (N,)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)  # (N,)
        inter = w * h
        iou = inter / (areas[i] + areas - inter)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def _qnms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """``torchvision::qnms`` fallback: NMS on the integer representations of quantized tensors.

    IoU is scale-free, so running :func:`nms_reference` on float copies of ``int_repr()`` values
    matches the quantized kernel (which works on the same integers).
    """
    return nms_reference(boxes.float(), scores.float(), iou_threshold)


def _op_exists(name: str) -> bool:
    """True if ``torchvision::<name>`` is defined in the dispatcher."""
    try:
        getattr(torch.ops.torchvision, name).default
    except (AttributeError, RuntimeError):
        return False
    return True


def _torchvision_dir() -> str | None:
    """Directory of the installed torchvision package, found without importing it."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _try_load_extension() -> bool:
    """Load ``torchvision/_C`` the way torchvision does; False when it cannot be loaded."""
    lib_dir = _torchvision_dir()
    if lib_dir is None:
        return False
    finder = importlib.machinery.FileFinder(
        lib_dir, (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES)
    )
    spec = finder.find_spec("_C")
    if spec is None or spec.origin is None:
        return False
    try:
        torch.ops.load_library(spec.origin)
    except (ImportError, OSError):
        return False
    return True


def _register_fallback() -> None:
    """Define ``torchvision::nms`` and ``torchvision::qnms`` with pure-PyTorch CPU kernels."""
    global _LIB
    if _LIB is not None:
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    # Schemas as in torchvision/csrc/ops/nms.cpp.
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", nms_reference, "CPU")
    lib.impl("qnms", _qnms_reference, "CPU")
    _LIB = lib


def extension_loaded() -> bool | None:
    """Whether torchvision's compiled extension loaded (None before :func:`ensure_torchvision`)."""
    return _EXTENSION_LOADED


def fallback_registered() -> bool:
    """Whether this module registered its pure-PyTorch ``torchvision::nms`` fallback."""
    return _LIB is not None


def ensure_torchvision() -> types.ModuleType:
    """Import torchvision, first registering a CPU ``nms`` fallback when its extension is broken.

    Idempotent: later calls return the already imported module.  On an install whose
    ``torchvision/_C`` loads (matching torch build), it only imports torchvision.

    Returns:
        The ``torchvision`` module.

    Raises:
        ImportError: torchvision is not installed.
    """
    global _EXTENSION_LOADED
    if "torchvision" in sys.modules and _EXTENSION_LOADED is not None:
        return sys.modules["torchvision"]
    if _EXTENSION_LOADED is None:
        if _torchvision_dir() is None:
            raise ImportError("torchvision is not installed (pip install -c requirements/constraints.txt torchvision)")
        _EXTENSION_LOADED = _try_load_extension()
        if not _EXTENSION_LOADED and not _op_exists("nms"):
            _register_fallback()
    import torchvision

    return torchvision


# Importing this module is enough: ``import wdlg_core._compat`` before ``import torchvision``.
ensure_torchvision()
