"""Evaluate a policy bundle the way the robot runs it: onnxruntime through `PolicyRuntime`.

    python training/evaluate.py models/recore_pointnav --env embedded --split ood --episodes 200 \\
        [--baseline] [--expert] [--run-dir runs/recore_depth] [--out DIR] [--workers 2] [--videos 2]

Episode i uses seed `--seed-base` + i (default `training.collect.EVAL_SEED_BASE`, the seeds the
training program evaluates on), so two policies, the no-learning baseline of `--baseline` and
the privileged shortest-path expert of `--expert` (`training/baselines.py`) meet the same scenes,
starts and goals. Reported per policy: success rate (95% Wilson interval), SPL, collisions per
episode, episode length and return (95% bootstrap intervals of the mean). Writes to `--out` (default runs/eval/<bundle>_<env>_<split>):
`summary.json`, `summary.md`, `success_vs_steps.png` (from `--run-dir`'s metrics.jsonl) and
`videos/`: a few successes and failures, the camera beside the top-down map with the path.
Episodes run in `--workers` spawned processes (one GL context and one onnxruntime session each).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import multiprocessing
import os
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):   # run as `python training/evaluate.py`: import `training.` from the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from training.baselines import GoalSeekingBaseline, ShortestPathExpert
from training.collect import ENV_KINDS, EVAL_SEED_BASE, make_env

SPLITS = ("train", "ood", "sim2real")
VIDEO_FPS = 10
CAMERA_SCALE = 4            # the 64x64 camera image is shown 4x larger in videos


@dataclass
class Episode:
    seed: int
    success: bool
    spl: float
    collisions: int
    length: int
    episode_return: float


class BundlePolicy:
    """A policy bundle through the robot's runtime, with the baseline's reset/act surface."""

    def __init__(self, bundle_dir: Path, providers: str = "cpu"):
        from recore_nav.policy import PolicyRuntime
        self.runtime = PolicyRuntime(bundle_dir, providers=providers, cpu_threads=1)
        self.name = self.runtime.spec.name or Path(bundle_dir).name
        self.image_size = self.runtime.spec.image_height

    def reset(self) -> None:
        self.runtime.reset()

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        return self.runtime.step(obs["rgb"], obs["goal"])


# -- statistics ------------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (sound at 0%, 100% and small n)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(values: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean (fixed seed: the same data, the same interval)."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        v = float(values.mean()) if len(values) else float("nan")
        return (v, v)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(low), float(high))


def summarize(episodes: list[Episode]) -> dict[str, dict[str, Any]]:
    """Each metric's value and 95% interval."""
    successes = sum(e.success for e in episodes)
    n = len(episodes)
    out: dict[str, dict[str, Any]] = {
        "success_rate": {"value": successes / n if n else float("nan"), "ci95": list(wilson_interval(successes, n))},
    }
    for key, values in (("spl", [e.spl for e in episodes]), ("collisions", [e.collisions for e in episodes]),
                        ("episode_length", [e.length for e in episodes]),
                        ("return", [e.episode_return for e in episodes])):
        array = np.asarray(values, np.float64)
        out[key] = {"value": float(array.mean()) if n else float("nan"), "ci95": list(bootstrap_interval(array))}
    return out


# -- running episodes --------------------------------------------------------------------------
def _video_frames(env, rgb_frames: list[np.ndarray], poses: list[tuple[float, float, float]]) -> np.ndarray:
    """Camera (enlarged) beside the top-down map with the path so far, one frame per step."""
    camera = [np.kron(rgb, np.ones((CAMERA_SCALE, CAMERA_SCALE, 1), np.uint8)) for rgb in rgb_frames]
    traversability = getattr(env, "traversability", None)
    if traversability is None:   # iGibson: no map of ours, the camera alone
        frames = camera
    else:
        from recore_nav.sim.top_down import render_top_down
        path = [(x, y) for x, y, _ in poses]
        shortest = env.geodesic.path_from(*path[0])
        frames = []
        for t, image in enumerate(camera):
            top = render_top_down(traversability, path[: t + 1], poses[t], tuple(env.goal_position),
                                  shortest_path=shortest, pixels_per_metre=24.0)
            height = max(top.shape[0], image.shape[0])
            frame = np.full((height, image.shape[1] + top.shape[1], 3), 255, np.uint8)
            frame[: image.shape[0], : image.shape[1]] = image
            frame[: top.shape[0], image.shape[1]:] = top
            frames.append(frame)
    # Video codecs want sides divisible by 16: pad with white.
    h, w = frames[0].shape[:2]
    padded = np.full((len(frames), -(-h // 16) * 16, -(-w // 16) * 16, 3), 255, np.uint8)
    padded[:, :h, :w] = np.stack(frames)
    return padded


def run_episodes(job: dict[str, Any]) -> tuple[list[Episode], list[tuple[Episode, np.ndarray]]]:
    """Run the episodes of `job["seeds"]` with one policy in this process; keep a few videos."""
    from tqdm import tqdm

    if job["policy"] == "baseline":
        policy = GoalSeekingBaseline()
    elif job["policy"] == "expert":
        policy = ShortestPathExpert()
    else:
        policy = BundlePolicy(Path(job["bundle"]), job["providers"])
    env = make_env(job["env"], job["split"], image_size=job["image_size"], max_steps=job["max_steps"])
    episodes: list[Episode] = []
    videos: list[tuple[Episode, np.ndarray]] = []
    wanted = {True: job["videos"], False: job["videos"]}
    # One bar per worker process, each on its own line; a thread lock, since tqdm's default
    # multiprocessing lock leaks a semaphore from each spawned worker.
    tqdm.set_lock(threading.RLock())
    progress = tqdm(job["seeds"], desc=f"{job['policy']} {job['split']} [{job['worker']}]", unit="episode",
                    position=job["worker"], dynamic_ncols=True)
    try:
        for seed in progress:
            obs, info = env.reset(seed=int(seed))
            policy.reset()
            record = wanted[True] > 0 or wanted[False] > 0
            rgb_frames, poses = [obs["rgb"]], [tuple(info["robot_pose"])]
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
                total += reward
                done = terminated or truncated
                if record:
                    rgb_frames.append(obs["rgb"])
                    poses.append(tuple(info["robot_pose"]))
            episode = Episode(seed=int(seed), success=bool(info["success"]), spl=float(info["spl"]),
                              collisions=int(info["collisions"]), length=int(info["steps"]),
                              episode_return=float(total))
            episodes.append(episode)
            if record and wanted[episode.success] > 0:
                wanted[episode.success] -= 1
                videos.append((episode, _video_frames(env, rgb_frames, poses)))
            progress.set_postfix(success=f"{sum(e.success for e in episodes)}/{len(episodes)}")
    finally:
        progress.close()
        env.close()
    return episodes, videos


def evaluate_policy(policy: str, args: argparse.Namespace, image_size: int
                    ) -> tuple[list[Episode], list[tuple[Episode, np.ndarray]]]:
    """All episodes of one policy ("bundle", "baseline" or "expert"), split over worker processes."""
    seeds = [args.seed_base + i for i in range(args.episodes)]
    workers = max(1, min(args.workers, len(seeds)))
    jobs = [{"policy": policy, "bundle": str(args.bundle), "providers": args.providers, "env": args.env,
             "split": args.split, "image_size": image_size, "max_steps": args.max_steps,
             "seeds": seeds[w::workers], "videos": args.videos, "worker": w} for w in range(workers)]
    if workers == 1:
        parts = [run_episodes(jobs[0])]
    else:
        # spawn: each worker makes its own GL context; never fork a process that may hold one.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(run_episodes, jobs)
    episodes = sorted((e for part, _ in parts for e in part), key=lambda e: e.seed)
    videos = [v for _, part in parts for v in part]
    kept = ([v for v in videos if v[0].success][: args.videos] + [v for v in videos if not v[0].success][: args.videos])
    return episodes, kept


# -- writing results ---------------------------------------------------------------------------
def interval_cell(metric: dict[str, Any], percent: bool = False) -> str:
    """"value [low, high]" of a `summarize` metric, as a percentage or to two decimals."""
    scale, digits = (100.0, 1) if percent else (1.0, 2)
    low, high = (scale * v for v in metric["ci95"])
    return f"{scale * metric['value']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown_table(rows: dict[str, dict[str, dict[str, Any]]], title: str) -> str:
    lines = [f"### {title}", "",
             "| policy | success % | SPL | collisions / episode | episode length | return |",
             "|---|---|---|---|---|---|"]
    for name, m in rows.items():
        cells = [interval_cell(m["success_rate"], True)] + [interval_cell(m[key]) for key in
                                                             ("spl", "collisions", "episode_length", "return")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Values with 95% intervals (Wilson for success, bootstrap of the mean otherwise)."]
    return "\n".join(lines) + "\n"


def plot_success_vs_steps(metrics_path: Path, out_path: Path) -> bool:
    """Success rate against training steps, one line per split, from a run's metrics.jsonl."""
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    evals = [r for r in records if r.get("kind") == "eval"]
    if not evals:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for split in sorted({r["split"] for r in evals}):
        points = [(r["step"], r["success_rate"]) for r in evals if r["split"] == split]
        ax.plot(*zip(*points), marker="o", label=split)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(metrics_path.parent.name)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return True


def write_video(frames: np.ndarray, path: Path) -> Path:
    """MP4 through imageio-ffmpeg, or a GIF where ffmpeg is missing."""
    import imageio.v2 as imageio
    try:
        imageio.mimwrite(path.with_suffix(".mp4"), list(frames), fps=VIDEO_FPS, macro_block_size=16)
        return path.with_suffix(".mp4")
    except Exception:   # no ffmpeg backend in this environment
        imageio.mimwrite(path.with_suffix(".gif"), list(frames), duration=1.0 / VIDEO_FPS)
        return path.with_suffix(".gif")


def record_in_bundle(bundle_dir: Path, key: str, summary: dict[str, Any], row: dict[str, Any]) -> None:
    """Put an evaluation into the bundle's policy.json, so the model carries its measured results.

    Evaluations of several splits often run at once: the JSON is re-read and rewritten under a
    lock on the bundle directory, so none of them overwrites another's result."""
    from recore_nav.bundle import read_bundle_spec, write_bundle_json
    directory = os.open(bundle_dir, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        spec = read_bundle_spec(bundle_dir)
        spec.evaluation[key] = {"episodes": summary["episodes"], "seed_base": summary["seed_base"],
                                "max_steps": summary["max_steps"], **row,
                                "baseline": summary["results"].get(GoalSeekingBaseline.name)}
        write_bundle_json(bundle_dir, spec)
    finally:
        os.close(directory)      # releases the lock


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="policy bundle directory (policy.onnx + policy.json)")
    parser.add_argument("--env", choices=ENV_KINDS, default="embedded")
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--baseline", action="store_true", help="also run the no-learning baseline")
    parser.add_argument("--expert", action="store_true",
                        help="also run the privileged shortest-path expert (the ceiling; embedded simulator only)")
    parser.add_argument("--run-dir", type=Path, help="training run whose metrics.jsonl to plot")
    parser.add_argument("--out", type=Path, help="output directory (default runs/eval/<bundle>_<env>_<split>)")
    parser.add_argument("--seed-base", type=int, default=EVAL_SEED_BASE)
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="episode processes")
    parser.add_argument("--videos", type=int, default=2, help="videos of successes and of failures, each")
    parser.add_argument("--record", action="store_true",
                        help="store this evaluation in the bundle's policy.json (evaluation.<env>/<split>)")
    parser.add_argument("--providers", default="cpu", help="onnxruntime providers (cpu, auto, cuda, tensorrt)")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from recore_nav.bundle import read_bundle_spec
    try:
        spec = read_bundle_spec(args.bundle)
        if args.env == "igibson":
            from training.igibson_env import require_igibson
            require_igibson()
    except Exception as err:   # BundleError, IGibsonMissing: one line each
        print(f"error: {err}", file=sys.stderr)
        return 2
    name = spec.name or args.bundle.name
    out = args.out or Path("runs") / "eval" / f"{name}_{args.env}_{args.split}"
    (out / "videos").mkdir(parents=True, exist_ok=True)

    results = {name: evaluate_policy("bundle", args, spec.image_height)}
    if args.baseline:
        results[GoalSeekingBaseline.name] = evaluate_policy("baseline", args, spec.image_height)
    if args.expert:
        results[ShortestPathExpert.name] = evaluate_policy("expert", args, spec.image_height)
    rows = {policy: summarize(episodes) for policy, (episodes, _) in results.items()}

    video_files = []
    for policy, (_, videos) in results.items():
        tag = {GoalSeekingBaseline.name: "baseline", ShortestPathExpert.name: "expert"}.get(policy, "policy")
        for episode, frames in videos:
            outcome = "success" if episode.success else "failure"
            video_files.append(str(write_video(frames, out / "videos" / f"{tag}_{outcome}_seed{episode.seed}")))
    plotted = None
    if args.run_dir is not None and (args.run_dir / "metrics.jsonl").is_file():
        if plot_success_vs_steps(args.run_dir / "metrics.jsonl", out / "success_vs_steps.png"):
            plotted = str(out / "success_vs_steps.png")

    summary = {
        "bundle": str(args.bundle), "name": name, "env": args.env, "split": args.split,
        "episodes": args.episodes, "seed_base": args.seed_base, "max_steps": args.max_steps,
        "training": {k: v for k, v in spec.training.items() if k != "config"},
        "results": rows, "videos": video_files, "plot": plotted,
        "per_episode": {policy: [asdict(e) for e in episodes] for policy, (episodes, _) in results.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    title = f"{name} on {args.env} / {args.split}, {args.episodes} episodes (seeds {args.seed_base}+)"
    table = markdown_table(rows, title)
    (out / "summary.md").write_text(table)
    print(table)
    if args.record:
        record_in_bundle(args.bundle, f"{args.env}/{args.split}", summary, rows[name])
    print(f"wrote {out}/summary.json, summary.md" + (", success_vs_steps.png" if plotted else "")
          + f" and {len(video_files)} videos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
