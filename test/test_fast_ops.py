"""`training.kernels.fast_ops.elu`: the C kernel computes ELU as ATen does, forward and backward, for
every layout and size it takes, and hands everything else to ATen."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from training.kernels import fast_ops

pytestmark = pytest.mark.skipif(fast_ops.library() is None, reason="no C compiler: ATen's ELU is used")


def _values(n: int, dtype: torch.dtype) -> torch.Tensor:
    special = torch.tensor([0.0, -0.0, 1e-8, -1e-8, -1e-3, -0.0099, -0.0101, -0.5, -1.0, -20.0, -87.0, -100.0,
                            -1e30, 3.0, 1e30, float("inf"), float("-inf")])
    x = torch.cat([special, torch.randn(n - len(special), generator=torch.Generator().manual_seed(0)) * 3.0])
    return x.to(dtype)


def _kernel_must_not_run(*args) -> None:
    raise AssertionError("the C kernel ran where ATen's ELU should have")


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("threads", [1, 2])
def test_forward_and_backward_match_aten(dtype: torch.dtype, threads: int, restore_threads) -> None:
    torch.set_num_threads(threads)
    n = 2 * fast_ops.PARALLEL_ELEMENTS + 7           # split across threads, the last chunk ragged
    x = _values(n, dtype).requires_grad_()
    y = fast_ops.elu(x)
    expected = F.elu(x.detach().float())
    if dtype == torch.bfloat16:
        assert torch.equal(y.detach(), expected.bfloat16())
    else:
        assert torch.allclose(y.detach(), expected, rtol=2e-7, atol=1e-30)
    grad = torch.randn_like(y)
    assert torch.equal(torch.autograd.grad(y, x, grad)[0], torch.autograd.grad(F.elu(x), x, grad)[0])


def test_nan_stays_nan() -> None:
    x = torch.full((fast_ops.MIN_ELEMENTS,), float("nan"))
    assert fast_ops.elu(x).isnan().all()


def test_channels_last_activations_keep_their_layout() -> None:
    x = torch.randn(4, 16, 31, 31, generator=torch.Generator().manual_seed(1)).to(memory_format=torch.channels_last).bfloat16()
    y = fast_ops.elu(x)
    assert y.stride() == x.stride()
    assert torch.allclose(y.float(), F.elu(x.float()).bfloat16().float(), rtol=2 ** -8, atol=0)


@pytest.mark.parametrize("x", [torch.randn(100),                                 # small
                               torch.randn(300, 400)[:, :200],                   # strided
                               torch.randn(300, 400, dtype=torch.float64)])      # no kernel for the dtype
def test_other_tensors_take_atens_elu(x: torch.Tensor, monkeypatch) -> None:
    monkeypatch.setattr(fast_ops, "_run", _kernel_must_not_run)
    assert not fast_ops._usable(x)
    assert fast_ops.elu(x).shape == x.shape        # ran, without the kernel


def test_build_is_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RECORE_NAV_CACHE", str(tmp_path))
    first = fast_ops.build()
    stamp = first.stat().st_mtime_ns
    assert fast_ops.build() == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]        # no partial files left


def test_without_a_compiler_atens_elu_runs_and_the_reason_is_told(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RECORE_NAV_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setattr(fast_ops, "_loaded", False)
    monkeypatch.setattr(fast_ops, "_library", None)
    assert fast_ops.library() is None
    assert fast_ops.describe().startswith("ELU from ATen (") and "no-such-cc" in fast_ops.describe()
    monkeypatch.setattr(fast_ops, "_run", _kernel_must_not_run)
    x = torch.randn(fast_ops.MIN_ELEMENTS)          # large enough for the kernel, were there one
    assert not fast_ops._usable(x) and fast_ops.elu(x).shape == x.shape
