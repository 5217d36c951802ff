"""Episode records and their summary: the one evaluation vocabulary of the package.

The simulator bridge, the training program's periodic evaluation and `training/evaluate.py` all
describe a finished point-goal episode as an `EpisodeRecord` and a set of them with
`summarize`: each metric's mean with a 95% interval (Wilson for the success rate, a fixed-seed
percentile bootstrap of the mean for the others), so every number the package prints reads alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# Summary metrics, in the order tables show them.
METRICS = ("success_rate", "spl", "collisions", "episode_length", "return")


@dataclass(frozen=True)
class EpisodeRecord:
    """One finished episode. `seed` is the episode's reset seed where it had one (evaluation)."""

    success: bool
    spl: float
    collisions: int
    length: int
    episode_return: float
    seed: int | None = None

    @classmethod
    def from_info(cls, info: Mapping[str, Any], episode_return: float, seed: int | None = None) -> EpisodeRecord:
        """The record of an episode from the environment contract's `info` at its last step."""
        return cls(success=bool(info.get("success", False)), spl=float(info.get("spl", 0.0)),
                   collisions=int(info.get("collisions", 0)), length=int(info.get("steps", 0)),
                   episode_return=float(episode_return), seed=None if seed is None else int(seed))


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (sound at 0%, 100% and small n)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(values: Iterable[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean (fixed seed: the same data, the same interval)."""
    values = np.asarray(list(values), np.float64)
    if len(values) < 2:
        v = float(values.mean()) if len(values) else float("nan")
        return (v, v)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(low), float(high))


def summarize(episodes: Iterable[EpisodeRecord]) -> dict[str, Any]:
    """`episodes` (the count) and, per metric of METRICS, {"value": mean, "ci95": [low, high]}."""
    episodes = list(episodes)
    n = len(episodes)
    successes = sum(e.success for e in episodes)
    out: dict[str, Any] = {
        "episodes": n,
        "success_rate": {"value": successes / n if n else float("nan"), "ci95": list(wilson_interval(successes, n))},
    }
    for key, values in (("spl", [e.spl for e in episodes]), ("collisions", [e.collisions for e in episodes]),
                        ("episode_length", [e.length for e in episodes]),
                        ("return", [e.episode_return for e in episodes])):
        array = np.asarray(values, np.float64)
        out[key] = {"value": float(array.mean()) if n else float("nan"), "ci95": list(bootstrap_interval(array))}
    return out


def paired_success_differences(a: Iterable[EpisodeRecord], b: Iterable[EpisodeRecord]) -> list[float]:
    """success(a) - success(b) (each 0 or 1) for every episode seed both ran, in seed order: two
    policies on the same layouts, starts and goals, so their difference has a paired interval."""
    successes_b = {e.seed: e.success for e in b if e.seed is not None}
    pairs = sorted((e.seed, float(e.success) - float(successes_b[e.seed])) for e in a if e.seed in successes_b)
    return [difference for _, difference in pairs]


def paired_success_difference(a: Iterable[EpisodeRecord], b: Iterable[EpisodeRecord]) -> dict[str, Any] | None:
    """Mean success of `a` minus `b` paired by episode, its 95% bootstrap interval over the pairs
    and the number of pairs; None when no episode pairs."""
    differences = paired_success_differences(a, b)
    if not differences:
        return None
    return {"value": float(np.mean(differences)), "ci95": list(bootstrap_interval(differences)),
            "episodes": len(differences)}


def summary_values(summary: Mapping[str, Any]) -> dict[str, float]:
    """A summary's means alone, for scalar logs: {"episodes": n, "success_rate": mean, ...}."""
    return {"episodes": summary["episodes"], **{key: summary[key]["value"] for key in METRICS}}


def summary_line(summary: Mapping[str, Any]) -> str:
    """One line for logs: success with its interval, SPL, collisions and length per episode."""
    low, high = (100 * v for v in summary["success_rate"]["ci95"])
    return (f"{summary['episodes']} episodes: success {100 * summary['success_rate']['value']:.1f}% "
            f"[{low:.1f}, {high:.1f}], SPL {summary['spl']['value']:.2f}, "
            f"collisions {summary['collisions']['value']:.1f} / episode, "
            f"length {summary['episode_length']['value']:.0f} steps")
