"""Speed and memory of the embedded simulator (PointNavEnv), in one process.

    python bench/sim_speed.py [--sizes 64 128] [--steps 3000] [--resets 50] [--gl egl|osmesa]

Prints, per image size (rgb + depth + seg rendered every step, 10 Hz control, 10 physics
substeps): env steps per CPU-second (time.process_time, random actions, resets excluded),
the median and 90th percentile of a reset with a fresh layout (wall and CPU ms), and the
process's resident memory (RSS) after the run. Target (issue 3): >= 700 steps per CPU-second at
64x64, reset median <= 30 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

from machine import MachineWatch   # bench/machine.py


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def bench_size(size: int, steps: int, resets: int, seed: int) -> dict[str, float]:
    import numpy as np

    from recore_nav.sim import PointNavEnv

    env = PointNavEnv(split="train", image_size=size, seed=seed)
    rng = np.random.default_rng(seed)
    env.reset()
    for _ in range(20):                  # warm-up: first render, caches
        env.step(rng.uniform(-1, 1, 2).astype(np.float32))

    step_cpu, done_steps = 0.0, 0
    while done_steps < steps:
        actions = rng.uniform(-1, 1, (100, 2)).astype(np.float32)
        t = time.process_time()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            done_steps += 1
            if terminated or truncated:
                break
        step_cpu += time.process_time() - t
        if terminated or truncated:
            env.reset()

    reset_wall, reset_cpu = [], []
    for _ in range(resets):
        w, c = time.perf_counter(), time.process_time()
        env.reset()                      # episodes_per_layout = 1: a fresh layout every reset
        reset_wall.append(time.perf_counter() - w)
        reset_cpu.append(time.process_time() - c)
    env.close()
    return {
        "steps_per_cpu_s": done_steps / step_cpu,
        "step_cpu_ms": 1e3 * step_cpu / done_steps,
        "reset_wall_ms_median": 1e3 * float(np.median(reset_wall)),
        "reset_wall_ms_p90": 1e3 * float(np.percentile(reset_wall, 90)),
        "reset_cpu_ms_median": 1e3 * float(np.median(reset_cpu)),
        "rss_mib": rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--resets", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gl", choices=["egl", "osmesa"], default=None, help="MUJOCO_GL (default: egl)")
    args = parser.parse_args()
    if args.gl:
        os.environ["MUJOCO_GL"] = args.gl   # before recore_nav.sim imports mujoco

    t = time.perf_counter()
    import recore_nav.sim  # noqa: F401
    import_s = time.perf_counter() - t
    rss_import = rss_mib()
    print(f"python {platform.python_version()}, MUJOCO_GL={os.environ.get('MUJOCO_GL')}, "
          f"LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS')}, cpus={os.cpu_count()}, "
          f"import {import_s:.2f} s, RSS after import {rss_import:.0f} MiB")
    watch = MachineWatch()
    for size in args.sizes:
        r = bench_size(size, args.steps, args.resets, args.seed)
        print(f"{size}x{size} rgb+depth+seg: {r['steps_per_cpu_s']:.0f} steps/CPU-s ({r['step_cpu_ms']:.2f} ms/step); "
              f"reset (fresh layout) median {r['reset_wall_ms_median']:.1f} ms wall / {r['reset_cpu_ms_median']:.1f} ms CPU, "
              f"p90 {r['reset_wall_ms_p90']:.1f} ms; RSS {r['rss_mib']:.0f} MiB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this env process: {peak:.0f} MiB")
    print(watch.report())


if __name__ == "__main__":
    main()
