"""The phase decomposition of strided transposed convolutions equals F.conv_transpose2d."""
import pytest
import torch
import torch.nn.functional as F

from wdlg_core.conv import Conv2d, conv_transpose, phase_decomposable


@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("padding,kernel", [(0, 2), (1, 3), (2, 5), (0, 5), (3, 4)])
@pytest.mark.parametrize("size", [7, 8, 32])
@pytest.mark.parametrize("groups", [1, 4])
def test_conv_transpose_by_phases_equals_torch(stride, padding, kernel, size, groups):
    gen = torch.Generator().manual_seed(stride * 100 + kernel * 10 + size)
    o, c = 6, 3                                                  # fewer output channels: the phase path
    w = torch.randn(groups * o, c, kernel, kernel, generator=gen, dtype=torch.float64)
    x = torch.randn(2, groups * c, size, size, generator=gen, dtype=torch.float64, requires_grad=True)
    y = F.conv2d(x, w, stride=stride, padding=padding, groups=groups)
    d = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    (ref,) = torch.autograd.grad(y, x, d)                        # the input gradient: a transposed convolution
    assert phase_decomposable(w, (stride, stride), groups)
    got = conv_transpose(d, w, (stride, stride), (padding, padding), (size, size), groups=groups)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_other_cases_use_torch_and_agree():
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(2, 4, 8, 8, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 4, 5, 5, generator=gen, dtype=torch.float64)
    assert not phase_decomposable(w, (1, 1)) and not phase_decomposable(w, (2, 2))
    for stride, size in ((1, 8), (2, 16), (2, 15)):
        dd = d if stride == 1 else d[:, :, :(size + 4 - 5) // 2 + 1, :(size + 4 - 5) // 2 + 1]
        out_pad = size - ((dd.shape[2] - 1) * stride + 1)
        ref = F.conv_transpose2d(dd, w, stride=stride, padding=2, output_padding=out_pad)
        assert torch.equal(conv_transpose(dd, w, (stride, stride), (2, 2), (size, size)), ref)


def test_conv2d_function_gradients_equal_autograd():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 32, 32, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(12, 3, 5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(12, generator=gen, dtype=torch.float64, requires_grad=True)
    out = Conv2d.apply(x, w, b, (2, 2), (2, 2))
    ref = F.conv2d(x, w, b, stride=2, padding=2)
    assert torch.allclose(out, ref)
    g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    for got, want in zip(torch.autograd.grad(out, (x, w, b), g), torch.autograd.grad(ref, (x, w, b), g)):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
