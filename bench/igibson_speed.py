"""Speed and memory of iGibson (IGibsonPointNavEnv, a worker process in its own venv) beside the embedded simulator.

    PYTHONPATH=. MUJOCO_GL=egl python bench/igibson_speed.py [--steps 500] [--sizes 64 128] [--resets 10]

Prints, per simulator and image size (rgb + depth + seg every step, the shortest-path expert's
`info["expert_action"]` as the action so the robot crosses the scene):
- env steps per wall second over `--steps` steps after 20 warm-up steps, resets that end an
  episode inside the loop are timed out of it (their count is printed), and the CPU ms per step of
  this process plus (iGibson) its worker;
- the first reset of a new env (for iGibson: starting the worker and loading its first scene),
  then the median and max wall time of `--resets` resets with a new seed each (a new layout: for
  iGibson a scene written to the disk cache, unless an earlier run wrote it, and loaded);
- memory (VmRSS) of one env as `make_vector_env(kind, num_envs=1)` runs it: the spawned env
  process (the trainer side) and, for iGibson, its worker process, after a reset and 50 steps.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import numpy as np
from machine import MachineWatch  # bench/machine.py

KINDS = ("igibson", "embedded")


def rss_mib(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def cpu_s(pid: int) -> float:
    """utime + stime of another process, in s."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    kids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/status") as f:
                if any(line == f"PPid:\t{pid}\n" for line in f):
                    kids.append(int(entry))
        except OSError:
            continue
    return kids


def bench_speed(kind: str, size: int, steps: int, resets: int, seed: int) -> dict[str, Any]:
    from recore_nav.sim.factory import make_env

    env = make_env(kind, split="train", image_size=size, seed=seed)
    t = time.perf_counter()
    _, info = env.reset()
    first_reset = time.perf_counter() - t
    worker = getattr(env, "_worker", None)

    def cpu() -> float:
        return time.process_time() + (cpu_s(worker.pid) if worker is not None else 0.0)

    for _ in range(20):                  # warm-up
        _, _, terminated, truncated, info = env.step(info["expert_action"])
        if terminated or truncated:
            _, info = env.reset()
    step_wall = step_cpu = 0.0
    done_steps = loop_resets = 0
    while done_steps < steps:
        w, c = time.perf_counter(), cpu()
        _, _, terminated, truncated, info = env.step(info["expert_action"])
        step_wall += time.perf_counter() - w
        step_cpu += cpu() - c
        done_steps += 1
        if terminated or truncated:
            _, info = env.reset()
            loop_resets += 1

    scenes = getattr(env, "_dataset_path", None)
    before = len(os.listdir(scenes)) if scenes is not None and scenes.exists() else 0
    reset_wall = []
    for i in range(resets):
        t = time.perf_counter()
        env.reset(seed=seed + 1 + i)     # a new seed draws a new layout
        reset_wall.append(time.perf_counter() - t)
    written = len(os.listdir(scenes)) - before if scenes is not None else None
    worker_rss = rss_mib(worker.pid) if worker is not None else None
    env.close()
    return {"steps_s": done_steps / step_wall, "cpu_ms": 1e3 * step_cpu / done_steps, "loop_resets": loop_resets,
            "first_reset_s": first_reset, "reset_median_s": float(np.median(reset_wall)),
            "reset_max_s": max(reset_wall), "written": written, "worker_rss": worker_rss}


def bench_memory(kind: str, size: int, seed: int) -> tuple[float, float | None]:
    """(env process MiB, iGibson worker MiB or None) of a one-env make_vector_env after 50 steps."""
    from recore_nav.sim.factory import make_vector_env

    envs = make_vector_env(kind, num_envs=1, image_size=size, seed=seed, autoreset=True)
    try:
        _, info = envs.reset()
        for _ in range(50):
            _, _, _, _, info = envs.step(np.asarray(info["expert_action"], dtype=np.float32))
        pid = envs.processes[0].pid
        workers = children(pid)
        return rss_mib(pid), (sum(rss_mib(p) for p in workers) if workers else None)
    finally:
        envs.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--resets", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock, so the scenes are new")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000 * 1000

    from training.environments.igibson import IGibsonMissing, require_igibson
    try:
        require_igibson()
    except IGibsonMissing as err:
        raise SystemExit(str(err)) from None

    print(f"python {platform.python_version()}, MUJOCO_GL={os.environ.get('MUJOCO_GL')}, cpus={os.cpu_count()}, "
          f"seed {seed}; steps/s: wall, resets in the loop timed out; CPU ms/step: this process + iGibson worker")
    watch = MachineWatch()
    for i, size in enumerate(args.sizes):
        for kind in KINDS:              # the same episodes for both; new ones (seeds) for each size
            r = bench_speed(kind, size, args.steps, args.resets, seed + 1000 * i)
            new = f", {r['written']}/{args.resets} scenes new on disk" if r["written"] is not None else ""
            worker = f"; worker RSS {r['worker_rss']:.0f} MiB" if r["worker_rss"] is not None else ""
            print(f"{size}x{size} {kind:8s}: {r['steps_s']:6.1f} steps/s, {r['cpu_ms']:6.1f} CPU ms/step "
                  f"({r['loop_resets']} resets in loop); first reset {r['first_reset_s']:.2f} s; "
                  f"fresh-scene reset median {1e3 * r['reset_median_s']:.0f} ms, max {1e3 * r['reset_max_s']:.0f} ms"
                  f"{new}{worker}")
    size = max(args.sizes)
    for kind in KINDS:
        env_rss, worker_rss = bench_memory(kind, size, seed)
        total = env_rss + (worker_rss or 0.0)
        worker = f" + iGibson worker {worker_rss:.0f} MiB = {total:.0f} MiB" if worker_rss is not None else ""
        print(f"memory per env ({kind}, make_vector_env num_envs=1, {size}x{size}, VmRSS): "
              f"env process {env_rss:.0f} MiB{worker}")
    print(watch.report())


if __name__ == "__main__":
    main()
