"""Dataset generators: the project makes its offline data, as nothing can be downloaded here.

`pointmaze` drives OGBench's pointmaze (the `ogbench` package's environment, no download);
`embedded` drives this package's MuJoCo simulator. Each offers `generate(dataset_type, ...)`
returning a `Generated`; `python -m training.data.generate` is the command line over both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DATASET_TYPES = ("navigate", "stitch", "explore")


@dataclass
class Generated:
    """A generated dataset's arrays (the layout of `training.data.datasets`) and what happened."""

    arrays: dict[str, np.ndarray]
    stats: dict[str, float] = field(default_factory=dict)


def noisy(action: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """`action` plus Gaussian noise of standard deviation `noise`, clipped to [-1, 1], float32."""
    return np.clip(action + rng.normal(0.0, noise, np.shape(action)), -1.0, 1.0).astype(np.float32)


def dataset_size(defaults: dict[str, tuple[int, int, float]], dataset_type: str, episodes: int | None,
                 steps: int | None, noise: float | None) -> tuple[int, int, float]:
    """(episodes, steps, noise), the type's defaults where None; ValueError for an unknown type or a size under 1 x 2."""
    if dataset_type not in defaults:
        raise ValueError(f"unknown dataset type {dataset_type!r}; expected one of {tuple(defaults)}")
    chosen = tuple(default if value is None else value
                   for value, default in zip((episodes, steps, noise), defaults[dataset_type]))
    if chosen[0] < 1 or chosen[1] < 2:
        raise ValueError(f"need at least 1 episode of 2 steps, got {chosen[0]} of {chosen[1]}")
    return chosen
