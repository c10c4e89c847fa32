"""Shared figure style and image grids (matplotlib + seaborn).

Images everywhere are numpy/torch arrays (C, H, W) or (B, C, H, W) with values in [0, 1];
one channel is drawn in grey, three as RGB.
"""
from __future__ import annotations

import matplotlib

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "svhn": "SVHN",
                 "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
from .methods import METHOD_NAMES  # noqa: E402,F401 (display names live in the method registry)


def set_theme() -> None:
    """The book's plot style: seaborn ``whitegrid``, ``colorblind`` palette, paper context."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
                                "axes.titlesize": "medium"})


def to_display(image) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) for C = 1 or (H, W, 3) for C = 3, clipped to [0, 1]."""
    img = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image, dtype=np.float32)
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"expected an image of shape (1|3, H, W), got {img.shape}")
    img = np.clip(img, 0.0, 1.0)
    return img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)


def show_image(ax, image, title: str | None = None, caption: str | None = None) -> None:
    """Draw one (C, H, W) image on ``ax`` without ticks; ``caption`` goes under it."""
    img = to_display(image)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=8)
    if caption:
        ax.set_xlabel(caption, fontsize=7, labelpad=2)


def image_grid(rows: list[tuple[str, list]], captions: list[list[str | None]] | None = None,
               col_titles: list[str | None] | None = None, cell: float = 1.25, title: str | None = None):
    """A grid of images: one row per entry of ``rows`` = (row label, list of (C, H, W) images).

    Args:
        rows: [(label, images)], all rows the same length (None entries leave a blank cell).
        captions: text under each image (same nesting as the images), e.g. MSE/PSNR.
        col_titles: titles above the first row's images.
        cell: inches per image.
        title: figure title.

    Returns:
        The matplotlib Figure.
    """
    n_rows, n_cols = len(rows), max(len(imgs) for _, imgs in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols + 0.6, (cell + 0.3) * n_rows + 0.4),
                             squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            img = imgs[c] if c < len(imgs) else None
            if img is None:
                ax.axis("off")
                continue
            cap = captions[r][c] if captions and captions[r] and c < len(captions[r]) else None
            show_image(ax, img, col_titles[c] if (r == 0 and col_titles) else None, cap)
            if c == 0:
                ax.set_ylabel(label, fontsize=9, rotation=90)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.3, h_pad=0.6, w_pad=0.3)
    return fig


def gallery_figure(gallery, max_images: int | None = None, title: str | None = None):
    """Figure 3 style: a ground-truth row and one row per method; columns are the attacked
    images of every dataset; MSE and PSNR under each reconstruction.

    Args:
        gallery: a :class:`wdlg_core.experiments.gallery.Gallery`.
        max_images: at most this many images per dataset (default all).
        title: figure title.
    """
    table = gallery.table
    methods = list(dict.fromkeys(table["method"])) if len(table) else []
    cols, truth, truth_caps, by_method = [], [], [], {m: ([], []) for m in methods}
    for ds, originals in gallery.originals.items():
        n = len(originals) if max_images is None else min(max_images, len(originals))
        for i in range(n):
            cols.append(f"{DATASET_NAMES.get(ds, ds)} #{i}")
            truth.append(originals[i])
            row0 = table[(table.dataset == ds) & (table["index"] == i)]
            truth_caps.append(f"label {int(row0['label'].iloc[0])}" if len(row0) else None)
            for m in methods:
                imgs, caps = by_method[m]
                recs = gallery.reconstructions.get((ds, m))
                row = table[(table.dataset == ds) & (table["index"] == i) & (table.method == m)]
                imgs.append(recs[i] if recs is not None and i < len(recs) else None)
                caps.append(metric_caption(row.iloc[0]) if len(row) else None)
    rows = [("ground truth", truth)] + [(METHOD_NAMES.get(m, m), by_method[m][0]) for m in methods]
    caps = [truth_caps] + [by_method[m][1] for m in methods]
    return image_grid(rows, caps, col_titles=cols, title=title)


def metric_caption(row) -> str:
    """'MSE 1.2e-03\\nPSNR 29.2 dB' (with a check mark for a success) from a table row."""
    psnr = row["psnr"]
    psnr_txt = "inf" if not np.isfinite(psnr) else f"{psnr:.1f}"
    mark = " \u2713" if bool(row.get("success", False)) else ""
    return f"MSE {row['mse']:.1e}{mark}\nPSNR {psnr_txt} dB"


def snapshot_grid(snapshots: dict[int, np.ndarray], original=None, final=None, captions: dict | None = None,
                  cell: float = 1.25, title: str | None = None):
    """The recovery process: one row per image of the batch, columns = ground truth,
    the snapshots in iteration order ("it 0" is the initial dummy), and the final image.

    Args:
        snapshots: {iteration: (B, C, H, W)} (``AttackResult.snapshots``).
        original: (B, C, H, W) ground truth, or None.
        final: (B, C, H, W) final reconstruction, or None.
        captions: {column title: [caption per image]} for extra text under images.
        cell: inches per image; title: figure title.
    """
    its = sorted(snapshots)
    columns = ([("ground truth", original)] if original is not None else []) \
        + [(f"it {it}", snapshots[it]) for it in its] \
        + ([("final", final)] if final is not None else [])
    if not columns:
        raise ValueError("nothing to draw: no snapshots, original or final image")
    b = len(columns[0][1])
    rows = [(f"image {k}" if b > 1 else "", [imgs[k] for _, imgs in columns]) for k in range(b)]
    caps = None
    if captions:
        caps = [[(captions.get(name) or [None] * b)[k] for name, _ in columns] for k in range(b)]
    return image_grid(rows, caps, col_titles=[name for name, _ in columns], cell=cell, title=title)
