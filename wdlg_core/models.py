"""The networks that are attacked, all with random weights (no pretrained weights anywhere).

Registry: :func:`build_model` ``(name, in_shape, num_classes, seed)``; ``MODELS`` lists names.

================  ==========================================================================
name              what it is (source)
================  ==========================================================================
lenet             DLG's LeNet (Zhu et al. 2019, reference code ``models/vision.py``): three
                  5x5 sigmoid convolutions (stride 2, 2, 1) and one linear layer; every
                  weight and bias ~ U(-0.5, 0.5). Hidden size 12*(H/4)*(W/4): 588 for 28 px,
                  768 for 32 px.
cnn6              R-GAP's CNN6 body (Zhu & Blaschko 2021) with a multi-class head: six
                  bias-free convolutions with LeakyReLU(0.2), then a bias-free
                  Linear(128*h*w -> num_classes), cross-entropy. Used for the paper's
                  CNN6 experiments (Figure 4, Table 3) on 10/100-class data.
cnn6_binary       R-GAP's original CNN6: the same body and Linear(128*h*w -> 1), no bias, a
                  binary classifier trained with the logistic loss (``loss_kind="logistic"``).
resnet18,         torchvision architectures (random init) with every ReLU replaced by a
densenet121,      Sigmoid, the setting of DLG's architecture study (paper/002). Inputs 224 px
inception_v3      (299 px for Inception-v3) in the original study; any size that the network
                  accepts works here.
fcn               R-GAP's fully connected network (FCN3): bias-free Linear 1000 -> 100 -> K
                  with LeakyReLU(0.2); K = 1 gives the logistic binary classifier.
================  ==========================================================================

Every model carries ``loss_kind`` (``"cross_entropy"`` or ``"logistic"``), the training loss
whose gradient is shared, used by :mod:`wdlg_core.gradients`.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class LeNet(nn.Module):
    """DLG's LeNet. Input (B, C, H, W), output logits (B, num_classes).

    Source: DLG reference code (Zhu et al. 2019), see PAPER_NOTES "Reference definitions".
    Sigmoid activations make the network twice differentiable everywhere, which the
    gradient-matching attacks need.
    """

    loss_kind = "cross_entropy"

    def __init__(self, in_shape=(3, 32, 32), num_classes: int = 10):
        super().__init__()
        c, h, w = in_shape
        self.body = nn.Sequential(
            nn.Conv2d(c, 12, kernel_size=5, padding=2, stride=2), nn.Sigmoid(),   # (B, 12, H/2, W/2)
            nn.Conv2d(12, 12, kernel_size=5, padding=2, stride=2), nn.Sigmoid(),  # (B, 12, H/4, W/4)
            nn.Conv2d(12, 12, kernel_size=5, padding=2, stride=1), nn.Sigmoid(),  # (B, 12, H/4, W/4)
        )
        hidden = _flat_size(self.body, in_shape)  # 588 for 28x28, 768 for 32x32
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc(self.body(x).flatten(1))  # (B, num_classes)

    def sequence(self) -> list[nn.Module]:
        """The layers in order (used by the batched engine's explicit per-attack gradients)."""
        return [*self.body, nn.Flatten(), self.fc]

    def reset_parameters(self):
        """U(-0.5, 0.5) for every weight and bias, as DLG's ``weights_init``."""
        for p in self.parameters():
            nn.init.uniform_(p, -0.5, 0.5)


class CNN6(nn.Module):
    """R-GAP's CNN6 body: bias-free convolutions with LeakyReLU(0.2).

    Layers (R-GAP repository): 3->12 (k4, p2, s2), 12->36 (k3, p1, s2), 36->36 (k3, p1, s1)
    twice, 36->64 (k3, p1, s2), 64->128 (k3, p1, s1), then a bias-free linear head. For a
    32x32 input the flattened feature has 128*5*5 = 3200 entries.

    Args:
        in_shape: (C, H, W) of one input image.
        num_classes: number of outputs; 1 gives R-GAP's original binary classifier with the
            logistic loss, more gives a multi-class head with cross-entropy.
    """

    def __init__(self, in_shape=(3, 32, 32), num_classes: int = 10):
        super().__init__()
        c = in_shape[0]
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.body = nn.Sequential(
            nn.Conv2d(c, 12, 4, stride=2, padding=2, bias=False), act(),    # (B, 12, 17, 17) for 32 px
            nn.Conv2d(12, 36, 3, stride=2, padding=1, bias=False), act(),   # (B, 36, 9, 9)
            nn.Conv2d(36, 36, 3, stride=1, padding=1, bias=False), act(),   # (B, 36, 9, 9)
            nn.Conv2d(36, 36, 3, stride=1, padding=1, bias=False), act(),   # (B, 36, 9, 9)
            nn.Conv2d(36, 64, 3, stride=2, padding=1, bias=False), act(),   # (B, 64, 5, 5)
            nn.Conv2d(64, 128, 3, stride=1, padding=1, bias=False), act(),  # (B, 128, 5, 5)
        )
        self.fc = nn.Linear(_flat_size(self.body, in_shape), num_classes, bias=False)
        self.loss_kind = "logistic" if num_classes == 1 else "cross_entropy"

    def forward(self, x):
        return self.fc(self.body(x).flatten(1))  # (B, num_classes)

    def sequence(self) -> list[nn.Module]:
        """The layers in order (used by the batched engine's explicit per-attack gradients)."""
        return [*self.body, nn.Flatten(), self.fc]

    def reset_parameters(self):
        """PyTorch's default (Kaiming-uniform) initialisation of every layer."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.reset_parameters()


class FCN(nn.Module):
    """A bias-free fully connected network with LeakyReLU(0.2), after R-GAP's FCN3.

    Layers: Flatten, Linear(C*H*W -> 1000), LeakyReLU(0.2), Linear(1000 -> 100),
    LeakyReLU(0.2), Linear(100 -> num_classes); no biases (R-GAP repository, ``models/FCN3.py``:
    784 -> 1000 -> 100 -> 1 with the logistic loss). ``num_classes=1`` gives that binary
    classifier (``loss_kind="logistic"``), more a multi-class head with cross-entropy.
    Used by :mod:`wdlg_core.rgap` (a fully connected network is R-GAP's simplest case).

    One difference: R-GAP's FCN3 also applies LeakyReLU(0.2) after its last Linear, so its
    output is the activated value; here the last Linear's output goes straight into the loss,
    as in the other networks of this package, and :mod:`wdlg_core.rgap` inverts that plain head.
    """

    def __init__(self, in_shape=(1, 28, 28), num_classes: int = 10, hidden=(1000, 100)):
        super().__init__()
        sizes = [int(torch.Size(in_shape).numel()), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b, bias=False), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(sizes[-1], num_classes, bias=False)
        self.loss_kind = "logistic" if num_classes == 1 else "cross_entropy"

    def forward(self, x):
        return self.fc(self.body(x))  # (B, num_classes)

    def sequence(self) -> list[nn.Module]:
        """The layers in order (used by the batched engine's explicit per-attack gradients)."""
        return [*self.body, self.fc]

    def reset_parameters(self):
        """PyTorch's default (Kaiming-uniform) initialisation of every layer."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()


def _flat_size(body: nn.Module, in_shape) -> int:
    with torch.no_grad():
        return int(body(torch.zeros(1, *in_shape)).numel())


# --- torchvision networks with sigmoid activations (paper/002) -------------------------------

class _SigmoidConv(nn.Module):
    """Inception-v3's BasicConv2d (conv, batch norm, ReLU) with the ReLU swapped for Sigmoid."""

    def __init__(self, basic):
        super().__init__()
        self.conv, self.bn = basic.conv, basic.bn

    def forward(self, x):
        return torch.sigmoid(self.bn(self.conv(x)))


class _DenseNetSigmoid(nn.Module):
    """DenseNet whose forward's functional ReLU (after the last block) is a Sigmoid."""

    def __init__(self, net):
        super().__init__()
        self.features, self.classifier = net.features, net.classifier

    def forward(self, x):
        out = torch.sigmoid(self.features(x))
        return self.classifier(F.adaptive_avg_pool2d(out, 1).flatten(1))


def _relu_to_sigmoid(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.Sigmoid())
        elif type(child).__name__ == "BasicConv2d":  # Inception-v3 applies F.relu inside
            setattr(module, name, _SigmoidConv(child))
        else:
            _relu_to_sigmoid(child)
    return module


def _torchvision_model(arch: str, num_classes: int) -> nn.Module:
    from ._compat import ensure_torchvision

    tv = ensure_torchvision()
    if arch == "inception_v3":
        net = tv.models.inception_v3(weights=None, num_classes=num_classes, aux_logits=False,
                                     init_weights=True)
    else:
        net = getattr(tv.models, arch)(weights=None, num_classes=num_classes)
    net = _relu_to_sigmoid(net)
    if arch == "densenet121":
        net = _DenseNetSigmoid(net)
    net.loss_kind = "cross_entropy"
    return net


class _Seed002Input(nn.Module):
    """A torchvision sigmoid network in the setting of DLG's architecture study (paper/002).

    * ImageNet normalisation as a fixed first layer, ``(x - mean) / std`` per channel with
      mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) (paper/002, "Methodology"), so
      the attacked input and the dummy live in [0, 1] pixel space: image MSE is measured on
      pixels, not on normalised values.
    * Batch-norm with per-batch statistics (train-mode arithmetic, no running statistics:
      ``track_running_stats=False``), as a freshly built torchvision model runs in the DLG
      code: each client normalises with its own batch, nothing is updated in place (so
      ``torch.func.vmap`` over attacks is safe), and the module stays in eval mode (dropout
      off). With eval-mode running statistics (mean 0, var 1) the sigmoid networks' gradient
      w.r.t. the input is ~1e-11 and L-BFGS never moves (measured). Per-batch BN needs more
      than one value per channel: every feature map must stay larger than 1x1 for batch 1.

    Input (B, 3, H, W) in [0, 1], output logits (B, num_classes).
    """

    MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1), persistent=False)
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.track_running_stats = False
                m.running_mean = m.running_var = m.num_batches_tracked = None
        self.loss_kind = "cross_entropy"

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def num_outputs(model: nn.Module) -> int:
    """Outputs of the model's last linear layer (its classes; 1 for a logistic head).

    Raises:
        ValueError: the model has no linear layer.
    """
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise ValueError(f"{type(model).__name__} has no linear output layer")
    return linear[-1].out_features


MODELS = ("lenet", "cnn6", "cnn6_binary", "resnet18", "densenet121", "inception_v3", "fcn")
#: DLG architecture-study variants (paper/002): ``<torchvision name>_dlg``, see :class:`_Seed002Input`.
SEED002_MODELS = ("resnet18_dlg", "densenet121_dlg", "inception_v3_dlg")


def build_model(name: str, in_shape=(3, 32, 32), num_classes: int = 10, seed: int = 0) -> nn.Module:
    """Build a randomly initialised model by name.

    Args:
        name: one of :data:`MODELS`.
        in_shape: (C, H, W) of one input image.
        num_classes: number of classes (ignored by ``cnn6_binary``, which has one output).
        seed: seed of the random initialisation (same seed, same weights).

    Returns:
        The model in eval mode, float32, on the CPU. Batch-norm layers of the plain
        torchvision models then use their running statistics, so an image's gradient does
        not depend on the rest of its batch; the ``*_dlg`` variants keep per-batch
        statistics even in eval mode (as DLG's code ran them, see :class:`_Seed002Input`),
        so there it does.

    Raises:
        ValueError: unknown name (the message lists :data:`MODELS`), or an input shape the
            network cannot take.
    """
    if name not in MODELS + SEED002_MODELS:
        raise ValueError(f"unknown model {name!r}; valid choices: {', '.join(MODELS + SEED002_MODELS)}")
    in_shape = tuple(int(s) for s in in_shape)
    if len(in_shape) != 3:
        raise ValueError(f"in_shape must be (C, H, W), got {in_shape}")
    torch.manual_seed(seed)
    try:
        if name == "lenet":
            model = LeNet(in_shape, num_classes)
            model.reset_parameters()
        elif name in ("cnn6", "cnn6_binary"):
            model = CNN6(in_shape, 1 if name == "cnn6_binary" else num_classes)
            model.reset_parameters()
        elif name == "fcn":
            model = FCN(in_shape, num_classes)
            model.reset_parameters()
        elif name in SEED002_MODELS:
            if in_shape[0] != 3:
                raise ValueError(f"model {name!r} normalises 3 ImageNet channels; got in_shape {in_shape}")
            model = _Seed002Input(_torchvision_model(name[:-len("_dlg")], num_classes)).eval()
            with torch.no_grad():
                model(torch.rand(1, *in_shape))  # batch 1: per-batch BN needs feature maps > 1x1
        else:
            model = _torchvision_model(name, num_classes).eval()  # eval: the probe must not touch BN statistics
            with torch.no_grad():
                model(torch.zeros(2, *in_shape))  # fails early on an input size it cannot take
    except (RuntimeError, ValueError) as err:
        if "in_shape" in str(err):
            raise
        raise ValueError(f"model {name!r} cannot take inputs of shape {in_shape}: {err}") from err
    return model.eval()
