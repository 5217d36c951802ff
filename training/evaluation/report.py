"""Writing evaluation results: markdown tables with intervals, the success-vs-steps plot of a
training run, episode videos, and the measured result a policy bundle carries in its policy.json."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

VIDEO_FPS = 10   # the control rate: videos play in real time


def evaluation_key(env: str, split: str) -> str:
    """The key of an evaluation in a bundle's `evaluation` field: `<env>/<split>`."""
    return f"{env}/{split}"


def environment_label(kind: str, igibson_scenes: Sequence[str] = ()) -> str:
    """What an environment is called in evaluation keys and output paths: its kind, or for
    iGibson's own scenes `igibson-<scene>+<scene>`, so those results never mix with the ones in
    this project's scenes."""
    return f"{kind}-{'+'.join(igibson_scenes)}" if igibson_scenes else kind


def interval_cell(metric: dict[str, Any], percent: bool = False) -> str:
    """"value [low, high]" of a summary metric, as a percentage or to two decimals."""
    scale, digits = (100.0, 1) if percent else (1.0, 2)
    low, high = (scale * v for v in metric["ci95"])
    return f"{scale * metric['value']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def difference_cell(difference: dict[str, Any]) -> str:
    """"+value [+low, +high]" of a success difference, in percentage points."""
    value, (low, high) = (100 * difference["value"], (100 * v for v in difference["ci95"]))
    return f"{value:+.1f} [{low:+.1f}, {high:+.1f}]"


def markdown_table(rows: dict[str, dict[str, Any]], title: str,
                   differences: dict[str, dict[str, Any]] | None = None) -> str:
    """One row per policy of `recore_nav.episodes.summarize` results; then, where given, the first
    row's success minus each other row's, paired by episode (`{other: paired difference}`)."""
    lines = [f"### {title}", "",
             "| policy | success % | SPL | collisions / episode | episode length | return |",
             "|---|---|---|---|---|---|"]
    for name, m in rows.items():
        cells = [interval_cell(m["success_rate"], True)] + [interval_cell(m[key]) for key in
                                                             ("spl", "collisions", "episode_length", "return")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Values with 95% intervals (Wilson for success, bootstrap of the mean otherwise)."]
    if differences:
        lines += ["", "Success minus the other policies' on the same episodes, percentage points (95% "
                  "bootstrap interval over the episode pairs):", ""]
        first = next(iter(rows))
        lines += [f"- {first} - {other}: {difference_cell(d)} ({d['episodes']} pairs)"
                  for other, d in differences.items()]
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


def record_in_bundle(bundle_dir: Path, key: str, result: dict[str, Any]) -> None:
    """Put an evaluation into the bundle's policy.json under `key` (`evaluation_key`), so the
    model carries its measured results.

    Evaluations of several splits often run at once: the JSON is re-read and rewritten under a
    lock on the bundle directory, so none of them overwrites another's result."""
    from recore_nav.bundle import read_bundle_spec, write_bundle_json
    directory = os.open(bundle_dir, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        spec = read_bundle_spec(bundle_dir)
        spec.evaluation[key] = result
        write_bundle_json(bundle_dir, spec)
    finally:
        os.close(directory)      # releases the lock
