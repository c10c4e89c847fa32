"""wdlg_core._compat: torchvision imports next to the CPU torch, with a correct nms fallback."""

import torch

import wdlg_core._compat as compat
import torchvision  # noqa: E402  (after the compat import, as CONTRIBUTING asks)


def naive_nms(boxes, scores, iou_threshold):
    """Greedy NMS in plain Python lists: the textbook algorithm, for comparison."""
    boxes, scores = boxes.tolist(), scores.tolist()
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        ok = True
        for j in keep:
            ax1, ay1, ax2, ay2 = boxes[i]
            bx1, by1, bx2, by2 = boxes[j]
            iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
            ih = max(0.0, min(ay2, by2) - max(ay1, by1))
            inter = iw * ih
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
            if inter / union > iou_threshold:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def random_boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 20  # top-left corners in [0, 20)
    wh = torch.rand(n, 2, generator=g) * 20 + 10  # sizes in [10, 30)
    scores = torch.rand(n, generator=g)
    return torch.cat([xy, xy + wh], dim=1), scores  # (n, 4), (n,)


def test_import_and_idempotent():
    assert compat.ensure_torchvision() is torchvision
    lib_before = compat._LIB
    assert compat.ensure_torchvision() is torchvision  # second call: no re-registration
    assert compat._LIB is lib_before
    assert torchvision.__version__.startswith("0.28.0")
    # Either the real extension loaded or our fallback defines the op; never both.
    assert compat.extension_loaded() != compat.fallback_registered()


def test_nms_matches_naive_python():
    for seed, thr in [(0, 0.5), (1, 0.3), (2, 0.7)]:
        boxes, scores = random_boxes(40, seed)
        expected = naive_nms(boxes, scores, thr)
        assert 1 <= len(expected) < 40  # the case really suppresses something
        assert torch.ops.torchvision.nms(boxes, scores, thr).tolist() == expected
        assert compat.nms_reference(boxes, scores, thr).tolist() == expected


def test_nms_small_hand_case_and_empty():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 (best) suppresses 0 (IoU 1) and 1 (IoU 81/119 = 0.68); box 2 is disjoint.
    kept = torch.ops.torchvision.nms(boxes, scores, 0.5)
    assert kept.dtype == torch.int64 and kept.tolist() == [3, 2]
    assert torch.ops.torchvision.nms(boxes, scores, 0.7).tolist() == [3, 1, 2]
    empty = torch.ops.torchvision.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.int64


def test_models_and_datasets_build():
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)
    import torchvision.datasets as tvd  # noqa: F401

    assert hasattr(tvd, "MNIST") and hasattr(tvd, "CIFAR100") and hasattr(tvd, "SVHN")
