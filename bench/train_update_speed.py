"""Seconds per world-model update and per imagination (actor-critic) update at DreamerV2's sizes.

Deterministic state 200, stochastic 32x32 discrete (or 30 Gaussian with --gaussian), CNN depth 32,
MLPs of 400 units, batch 16 x 50 of 64x64 images, imagination horizon 15 from all 800 posterior
states. Prints min and median over --repeats timed updates after --warmup, on the CPU with
--threads threads, and on CUDA where it is available; then the work of a pair (GFLOP of its
matrix products and convolutions) and the rate achieved, beside what one large matrix product
reaches on the same device and precision (the ceiling for this work).

    python bench/train_update_speed.py [--config config/train/recore_depth.yaml] [--set k=v ...]
    python bench/train_update_speed.py --profile      # torch.profiler table of where the time goes

On a machine shared with other busy processes, OpenMP's spinning threads stall each other and wall
times balloon (x5-10 seen); `OMP_WAIT_POLICY=PASSIVE` makes them sleep instead, and the printed
process CPU seconds divided by --threads then estimates the wall time on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from machine import MachineWatch   # bench/machine.py

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.methods.recore import Agent  # noqa: E402
from training.config import load_config  # noqa: E402
from training.kernels.cpu_tuning import configure_cpu  # noqa: E402


def synthetic_batch(batch: int, time_steps: int, size: int, classes: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Random tensors with the shapes and dtypes of a replayed batch (speed does not depend on content)."""
    g = torch.Generator().manual_seed(0)
    out = {
        "rgb": torch.randint(0, 256, (batch, time_steps, size, size, 3), dtype=torch.uint8, generator=g),
        "depth": torch.rand(batch, time_steps, size, size, 1, generator=g) * 5.0,
        "seg": torch.randint(0, classes, (batch, time_steps, size, size), dtype=torch.uint8, generator=g),
        "goal": torch.randn(batch, time_steps, 3, generator=g),
        "action": torch.rand(batch, time_steps, 2, generator=g) * 2 - 1,
        "reward": torch.randn(batch, time_steps, generator=g),
        "is_first": torch.zeros(batch, time_steps, dtype=torch.bool),
        "is_terminal": torch.zeros(batch, time_steps, dtype=torch.bool),
    }
    out["is_first"][:, 0] = True
    return {k: v.to(device) for k, v in out.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(agent: Agent, batch: dict[str, torch.Tensor], warmup: int, repeats: int
            ) -> tuple[list[float], list[float], list[float], list[int]]:
    """Wall seconds of each world-model and imagination update, and process CPU seconds and minor
    page faults of each pair."""
    model_s, behavior_s, cpu_s, faults = [], [], [], []
    for i in range(warmup + repeats):
        sync(agent.device)
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        c0, t0 = time.process_time(), time.perf_counter()
        _, posterior = agent.update_world_model(batch)
        sync(agent.device)
        t1 = time.perf_counter()
        agent.update_behavior(posterior)
        sync(agent.device)
        t2, c2 = time.perf_counter(), time.process_time()
        if i >= warmup:
            model_s.append(t1 - t0)
            behavior_s.append(t2 - t1)
            cpu_s.append(c2 - c0)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return model_s, behavior_s, cpu_s, faults


def count_flops(agent: Agent, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Floating-point operations of one world-model update and one imagination update (matrix
    products and convolutions, forward and backward, as torch's flop counter sees them)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as model_counter:
        _, posterior = agent.update_world_model(batch)
    with FlopCounterMode(display=False) as behavior_counter:
        agent.update_behavior(posterior)
    return float(model_counter.get_total_flops()), float(behavior_counter.get_total_flops())


def matmul_rate(dtype: torch.dtype, device: torch.device, size: int = 1024, repeats: int = 20) -> float:
    """FLOP/s of one large matrix product: what this machine's cores can do at best in `dtype`."""
    a = torch.randn(size * 12, size, dtype=dtype, device=device)
    b = torch.randn(size, size // 2, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * a.shape[0] * size * (size // 2) * repeats / (time.perf_counter() - start)


def huge_pages_gib() -> float:
    """Anonymous memory this process holds in transparent huge pages (Linux), else 0."""
    try:
        line = next(l for l in open("/proc/self/smaps_rollup") if l.startswith("AnonHugePages:"))
    except (OSError, StopIteration):
        return 0.0
    return int(line.split()[1]) / 2**20


def report(label: str, model_s: list[float], behavior_s: list[float], cpu_s: list[float], faults: list[int],
           flops: tuple[float, float], peak: float) -> None:
    total = [m + b for m, b in zip(model_s, behavior_s)]
    for name, values in (("world-model update", model_s), ("imagination update", behavior_s), ("sum", total)):
        print(f"{label:>16}  {name:<19} min {min(values):7.3f} s   median {statistics.median(values):7.3f} s")
    rate = sum(flops) / statistics.median(total)
    print(f"{label:>16}  {'work':<19} {flops[0] / 1e9:.1f} + {flops[1] / 1e9:.1f} GFLOP a pair: {rate / 1e9:.0f} GFLOP/s, "
          f"{100 * rate / peak:.0f}% of one large matrix product's {peak / 1e9:.0f} GFLOP/s")
    # On a shared machine wall time includes waiting for the cores; CPU seconds do not.
    print(f"{label:>16}  {'process CPU s/pair':<19} min {min(cpu_s):7.3f} s   median {statistics.median(cpu_s):7.3f} s"
          f"   (load average {os.getloadavg()[0]:.1f})")
    # Memory: pages touched afresh each pair (see training/kernels/cpu_tuning.py) and the process's peak.
    print(f"{label:>16}  {'page faults/pair':<19} median {statistics.median(faults):9.0f}"
          f"   peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB, {huge_pages_gib():.2f} GiB in huge pages")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/train/recore_depth.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--gaussian", action="store_true", help="30-dim Gaussian stochastic state")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table per update")
    parser.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32 and/or bf16 (mixed)")
    parser.add_argument("--no-cuda", action="store_true")
    parser.add_argument("--malloc-default", action="store_true",
                        help="leave glibc malloc as it is (to see what training/kernels/cpu_tuning.py saves)")
    args = parser.parse_args()

    precisions = args.precision.split(",")
    if len(precisions) > 1:
        # One process per precision: after fp32 in the same process, bf16 measured 1.72 s against
        # 1.53 s alone (the first agent's memory stays in the heap), so each gets a fresh process.
        argv, rest = [], iter(sys.argv[1:])
        for arg in rest:                   # every argument but --precision (and its value)
            if arg == "--precision":
                next(rest, None)
            elif not arg.startswith("--precision="):
                argv.append(arg)
        for precision in precisions:
            subprocess.run([sys.executable, __file__, *argv, "--precision", precision], check=True)
        return

    overrides = list(args.overrides) + (["agent.world_model.stoch=30", "agent.world_model.classes=0"] if args.gaussian else [])
    cfg = load_config(args.config, overrides)
    print(configure_cpu(args.threads, retain_memory=not args.malloc_default))
    torch.manual_seed(0)
    wm = cfg.agent.world_model
    print(f"config {args.config} ({cfg.agent.method}); deter {wm.deter}, stoch {wm.stoch}x{wm.classes or 'gaussian'}, "
          f"cnn depth {wm.cnn_depth}, mlp {wm.mlp_units}, batch {cfg.agent.batch_size}x{cfg.agent.seq_len}, "
          f"{cfg.env.image_size}x{cfg.env.image_size}, horizon {cfg.agent.behavior.horizon}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    watch = MachineWatch()
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append(torch.device("cuda"))
        torch.backends.cudnn.benchmark = True
    for device in devices:
        for precision in args.precision.split(","):
            cfg.agent.precision = precision
            agent = Agent(cfg.agent, cfg.env.image_size, device)
            batch = synthetic_batch(cfg.agent.batch_size, cfg.agent.seq_len, cfg.env.image_size,
                                    cfg.agent.representation.seg_classes, device)
            label = ("cpu" if device.type == "cpu" else torch.cuda.get_device_name(device)) + f" {precision}"
            if args.profile:
                measure(agent, batch, args.warmup, 0)
                profile(agent, batch)
            times = measure(agent, batch, args.warmup, args.repeats)
            peak = matmul_rate(torch.bfloat16 if precision == "bf16" else torch.float32, device)
            report(label, *times, count_flops(agent, batch), peak)
    print(watch.report())


def profile(agent: Agent, batch: dict[str, torch.Tensor]) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile, record_function

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if agent.device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        with record_function("world_model_update"):
            _, posterior = agent.update_world_model(batch)
        with record_function("imagination_update"):
            agent.update_behavior(posterior)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))


if __name__ == "__main__":
    main()
