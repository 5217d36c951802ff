"""Several PointNavEnvs in spawned processes (one GL context each) for batched collection."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym

from recore_nav.sim.env import PointNavEnv


def make_vector_env(num_envs: int, split: str = "train", seed: int | None = None,
                    **env_kwargs: Any) -> gym.vector.AsyncVectorEnv:
    """`num_envs` PointNavEnvs, each in its own spawned process, batched by gymnasium.

    Env i is seeded with seed + i (None: unseeded). Observations come back stacked
    (`obs["rgb"]` is (num_envs, H, W, 3), ...); `info` entries are arrays with a `_key` mask,
    as gymnasium's vector API does. Finished envs reset on the following step (gymnasium's
    default next-step autoreset). `env_kwargs` go to PointNavEnv (image_size, max_steps, ...).
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    fns = [functools.partial(PointNavEnv, split=split, seed=None if seed is None else seed + i, **env_kwargs)
           for i in range(num_envs)]
    # spawn, never fork: a forked child would inherit the parent's GL state.
    return gym.vector.AsyncVectorEnv(fns, context="spawn", shared_memory=True)
