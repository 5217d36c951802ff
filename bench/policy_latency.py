"""Latency of one policy step (PolicyRuntime.step) on a policy bundle: prints p50/p99/max in ms.

    python bench/policy_latency.py                          # the shipped models/recore_pointnav
    python bench/policy_latency.py --bundle models/other --providers cpu --steps 2000

The goal on this project's 2-core CPU is p50 <= 2 ms and p99 <= 5 ms for a 64x64 image. The image
changes every step (a fixed random sequence), as from a camera; warm-up is excluded, as in the node.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recore_nav.bundle import BundleError  # noqa: E402
from recore_nav.policy import PROVIDER_CHOICES, PolicyRuntime  # noqa: E402
from recore_nav.resources import default_model_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None, help="bundle directory (default: the shipped one)")
    parser.add_argument("--providers", default="cpu", choices=PROVIDER_CHOICES)
    parser.add_argument("--cpu-threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)

    bundle = args.bundle if args.bundle is not None else default_model_dir()
    if not (bundle / "policy.onnx").is_file():
        print(f"no policy bundle at {bundle}: train and export one (training/export_onnx.py) or pass --bundle",
              file=sys.stderr)
        return 1
    try:
        runtime = PolicyRuntime(bundle, providers=args.providers, cpu_threads=args.cpu_threads)
    except BundleError as err:
        print(err, file=sys.stderr)
        return 1

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, *runtime.image_shape), dtype=np.uint8)
    distances, bearings = rng.uniform(0.5, 5.0, 16), rng.uniform(-np.pi, np.pi, 16)
    goals = np.stack([distances, np.cos(bearings), np.sin(bearings)], axis=1).astype(np.float32)
    times = np.empty(args.steps)
    for i in range(args.steps):
        start = time.perf_counter()
        runtime.step(images[i % 16], goals[i % 16])
        times[i] = time.perf_counter() - start
    p50, p99 = np.percentile(times, [50, 99]) * 1e3
    spec = runtime.spec
    print(f"policy step, {spec.name or bundle.name}, image {spec.image_height}x{spec.image_width}, "
          f"state {spec.state_size}, {runtime.provider}, {args.cpu_threads} thread(s), {args.steps} steps: "
          f"p50 {p50:.3f} ms  p99 {p99:.3f} ms  max {times.max() * 1e3:.3f} ms")
    # p99 on a shared machine is mostly the scheduler: say how busy it was.
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
