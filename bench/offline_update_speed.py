"""Seconds per update of CRL and WM-CRL at OGBench's sizes (batch 1024, 3 x 512 GELU MLPs,
latent 512, ensemble of two), state-based (pointmaze: 2-D states) and from 64x64 images (the
ReCoRe encoder family), fp32 and bf16, on the CPU with --threads threads and on CUDA where it is
available. Prints min and median over --repeats updates after --warmup.

    python bench/offline_update_speed.py [--batch 1024] [--width 512] [--threads 2] [--repeats 10] [--images]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from machine import MachineWatch   # bench/machine.py

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.kernels.cpu_tuning import configure_cpu  # noqa: E402
from training.methods.crl import CRLConfig  # noqa: E402
from training.methods.wm_crl import WMCRLAgent, WorldModelConfig  # noqa: E402


def synthetic(batch: int, state_shape: tuple[int, ...], goal_dim: int, horizon: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    if len(state_shape) == 3:
        def states(*lead: int) -> torch.Tensor:
            return torch.randint(0, 256, (*lead, *state_shape), dtype=torch.uint8, generator=g).to(device)
    else:
        def states(*lead: int) -> torch.Tensor:
            return torch.randn(*lead, *state_shape, generator=g).to(device)
    actions = (torch.rand(batch, 2, generator=g) * 2 - 1).to(device)
    inputs = (states(batch), actions, torch.randn(batch, goal_dim, generator=g).to(device),
              torch.randn(batch, goal_dim, generator=g).to(device))
    sequences = (states(batch, horizon + 1), (torch.rand(batch, horizon, 2, generator=g) * 2 - 1).to(device),
                 torch.ones(batch, horizon, dtype=torch.bool, device=device))
    return inputs, sequences


def measure(method: str, images: bool, batch: int, width: int, precision: str, device: torch.device, warmup: int,
            repeats: int) -> list[float]:
    state_shape, goal_dim, goals_are_states = ((64, 64, 3), 3, False) if images else ((2,), 2, True)
    wm = WorldModelConfig(integration="all" if method == "wm_crl" else "none", warmup=0, embed_dim=width,
                          sa_dim=width, hidden=(width, width))
    crl = CRLConfig(batch_size=batch, precision=precision, hidden=(width,) * 3, latent_dim=width)
    agent = WMCRLAgent(crl, wm, state_shape, goal_dim, 2, goals_are_states).to(device)
    (states, actions, value_goals, actor_goals), sequences = synthetic(batch, state_shape, goal_dim, wm.horizon, device)
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        agent.update(sequences if method == "wm_crl" else None,
                     lambda: agent.crl_inputs(states, actions, value_goals, actor_goals))
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--width", type=int, default=512, help="MLP units and latent/embedding sizes (OGBench: 512)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--images", action="store_true", help="also from 64x64 images")
    parser.add_argument("--precision", default="fp32,bf16")
    args = parser.parse_args()
    print(configure_cpu(args.threads))
    watch = MachineWatch()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        for images in ([False, True] if args.images else [False]):
            for method in ("crl", "wm_crl"):
                for precision in args.precision.split(","):
                    times = measure(method, images, args.batch, args.width, precision, device, args.warmup,
                                    args.repeats)
                    label = f"{device.type} {method:>6} {'64x64 images' if images else '2-D states':>12} {precision}"
                    print(f"{label}  batch {args.batch} width {args.width}: min {min(times):.3f} s  median {statistics.median(times):.3f} s"
                          f"  ({1 / statistics.median(times):.1f} updates/s)", flush=True)
    print(watch.report())


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
