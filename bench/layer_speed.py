"""The layer-level speedups behind the DreamerV2-size update pair, each against what it replaced.

At DreamerV2's sizes (batch 16 x 50, CNN depth 32, 64x64 images) in bf16 on the CPU, median
milliseconds of forward + backward (forward only for the ELU):
  - the encoder's last layer (1,600 images, 128 -> 256 channels, 6x6 -> 2x2): convolution vs the
    patch-matrix product `ConvEncoder` uses;
  - the depth decoder's last layer (800 maps, 32 -> 1 channel, 30x30 -> 64x64): transposed
    convolution vs `SubPixelConvTranspose`;
  - ELU of the encoder's first activation (1,600 x 32 x 31 x 31): ATen vs `fast_ops.elu`;
  - categorical sampling of 800 x 32 x 32 logits: Gumbel-max vs inverse CDF (`sample_one_hot`);
  - one AdamW step over the world model's parameters: foreach vs fused.

    python bench/layer_speed.py [--threads 2] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.kernels import fast_ops  # noqa: E402
from training.kernels.cpu_tuning import configure_cpu  # noqa: E402
from training.methods.networks import ConvEncoder, SubPixelConvTranspose, conv_as_patch_product  # noqa: E402
from training.methods.world_model import sample_one_hot  # noqa: E402


def world_model_parameters() -> list[torch.Tensor]:
    from training.config import load_config
    from training.methods.world_model import WorldModel

    cfg = load_config("config/train/recore_depth.yaml", []).agent
    return list(WorldModel(cfg.world_model, cfg.representation, 64).parameters())


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def fwd_bwd(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> Callable[[], object]:
    out = fn(*inputs)
    grad = torch.randn_like(out)
    return lambda: torch.autograd.grad(fn(*inputs), inputs, grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(configure_cpu(args.threads))
    bf16, cl = torch.bfloat16, torch.channels_last
    rows = []

    encoder = ConvEncoder(32, 64)
    x = torch.randn(1600, 128, 6, 6, dtype=bf16).to(memory_format=cl).requires_grad_()
    last = encoder.net[-2]
    w, b = last.weight.detach().to(bf16).requires_grad_(), last.bias.detach().to(bf16).requires_grad_()

    rows.append(("encoder last layer, fwd+bwd", fwd_bwd(lambda x, w, b: F.conv2d(x, w, b, 2), x, w, b),
                 fwd_bwd(lambda x, w, b: conv_as_patch_product(x, w, b, 2), x, w, b)))

    x = torch.randn(800, 32, 30, 30, dtype=bf16).to(memory_format=cl).requires_grad_()
    w = (0.1 * torch.randn(32, 1, 6, 6, dtype=bf16)).requires_grad_()
    rows.append(("depth decoder last layer, fwd+bwd", fwd_bwd(lambda x, w: F.conv_transpose2d(x, w, None, 2), x, w),
                 fwd_bwd(lambda x, w: SubPixelConvTranspose.apply(x, w, 2), x, w)))

    x = torch.randn(1600, 32, 31, 31, dtype=bf16).to(memory_format=cl)
    rows.append(("ELU of 49M bf16 elements, fwd", lambda: F.elu(x), lambda: fast_ops.elu(x)))

    logits = torch.randn(800, 32, 32)

    def gumbel_max() -> torch.Tensor:
        gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp_(1e-20, 1.0)))
        return F.one_hot((logits + gumbel).argmax(-1), 32).float()

    rows.append(("categorical sample 800x32x32", gumbel_max, lambda: sample_one_hot(torch.softmax(logits, -1))))

    params = [torch.nn.Parameter(p.detach().clone()) for p in world_model_parameters()]
    for p in params:
        p.grad = torch.randn_like(p)
    steps = {kind: torch.optim.AdamW(params, lr=1e-4, **{kind: True}) for kind in ("foreach", "fused")}
    rows.append(("AdamW step, world model (10M params)", steps["foreach"].step, steps["fused"].step))

    print(f"{'':36} {'before':>9} {'now':>9}   (median ms of {args.repeats})")
    for name, before, now in rows:
        print(f"{name:36} {median_ms(before, args.repeats):9.1f} {median_ms(now, args.repeats):9.1f}")


if __name__ == "__main__":
    main()
