"""wdlg_core: gradient-inversion attacks (DLG, iDLG, WDLG, IG, SAPAG, R-GAP) and the book's experiments.

Public surface:

* :func:`run_attack` - attack one batch of images end to end, any method (``wdlg_core.attacks``).
* :data:`METHODS`, :func:`get_method` - the method registry (``wdlg_core.methods``).
* :func:`load_images` - real images by dataset name (``wdlg_core.data``).
* :func:`build_model` - the attacked networks by name (``wdlg_core.models``).
* :class:`AttackConfig`, :class:`AttackResult`.
"""
__version__ = "0.4.0"

from .attacks import run_attack  # noqa: E402
from .config import AttackConfig  # noqa: E402
from .methods import METHODS, get_method  # noqa: E402
from .models import build_model  # noqa: E402
from .result import AttackResult  # noqa: E402


def load_images(*args, **kwargs):
    """See :func:`wdlg_core.data.load_images` (imported lazily: it may import torchvision)."""
    from .data import load_images as _load

    return _load(*args, **kwargs)


__all__ = ["run_attack", "load_images", "build_model", "AttackConfig", "AttackResult", "METHODS", "get_method",
           "__version__"]
