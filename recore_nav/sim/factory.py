"""The one way to make a point-goal environment behind the environment contract: alone, or as a
vector of spawned processes. The trainer, evaluation and the simulator bridge all make theirs here.

    env = make_env("embedded", split="ood", image_size=64, seed=3)
    envs = make_vector_env("embedded", num_envs=2, split="train", seed=10)   # env i seeded seed + i

Kinds (`ENV_KINDS`): `embedded`, this package's MuJoCo simulator; `igibson`, the iGibson adapter
of a source checkout's `training/environments/igibson.py`, which needs iGibson installed (its
`check_available()` says how, before any worker process starts) and runs this project's scenes,
or iGibson's own with `igibson_data=<iGibson's data directory>, igibson_scenes=("Rs_int", ...)`.
"""

from __future__ import annotations

import functools
import importlib
import multiprocessing
import signal
from typing import Any

import gymnasium as gym

from recore_nav.sim.dynamics import BaseDynamics, BaseDynamicsWrapper
from recore_nav.task import MAX_EPISODE_STEPS

ENV_ENTRY_POINTS = {
    "embedded": "recore_nav.sim.env:PointNavEnv",
    "igibson": "training.environments.igibson:IGibsonPointNavEnv",
}
ENV_KINDS = tuple(ENV_ENTRY_POINTS)


def env_class(kind: str) -> type[gym.Env]:
    """The environment class of `kind`; a one-line error where it is unknown or cannot be imported."""
    if kind not in ENV_ENTRY_POINTS:
        raise ValueError(f"unknown environment {kind!r}; expected one of {ENV_KINDS}")
    module_name, _, class_name = ENV_ENTRY_POINTS[kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ValueError(f"environment {kind!r} needs {module_name} ({err})") from None
    return getattr(module, class_name)


def check_env_available(kind: str, **kwargs: Any) -> None:
    """Raise the environment's own one-line error where it cannot run here with these constructor
    arguments (iGibson not installed, its data directory incomplete)."""
    check = getattr(env_class(kind), "check_available", None)
    if check is not None:
        check(**kwargs)


def make_env(kind: str = "embedded", *, split: str = "train", image_size: int = 64, seed: int | None = None,
             max_steps: int = MAX_EPISODE_STEPS, dynamics: BaseDynamics | None = None, **kwargs: Any) -> gym.Env:
    """One environment of `kind`; `kwargs` go to its constructor (e.g. PointNavEnv's task_config).
    With `dynamics`, actions reach it through a base with that latency and those acceleration
    limits (`recore_nav.sim.dynamics`)."""
    env = env_class(kind)(split=split, image_size=image_size, seed=seed, max_steps=max_steps, **kwargs)
    return env if dynamics is None else BaseDynamicsWrapper(env, dynamics)


def make_vector_env(kind: str = "embedded", *, num_envs: int, split: str = "train", seed: int | None = None,
                    image_size: int = 64, max_steps: int = MAX_EPISODE_STEPS, autoreset: bool = True,
                    **kwargs: Any) -> gym.vector.AsyncVectorEnv:
    """`num_envs` environments of `kind`, each in its own spawned process, batched by gymnasium.

    Env i is seeded seed + i (None: unseeded). Observations come back stacked (`obs["rgb"]` is
    (num_envs, H, W, 3)); `info` entries are arrays with a `_key` mask. With `autoreset`,
    finished envs reset on the following step (gymnasium's next-step autoreset: training's
    rollouts); without, the caller resets them with `reset(seed=..., options={"reset_mask": m})`
    (evaluation, which gives every episode its own seed)."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    check_env_available(kind, **kwargs)   # fail here with the install hint, not inside a worker
    fns = [functools.partial(_worker_env, kind, split=split, image_size=image_size,
                             seed=None if seed is None else seed + i, max_steps=max_steps, **kwargs)
           for i in range(num_envs)]
    # spawn, never fork: a forked child would inherit the parent's GL state.
    mode = gym.vector.AutoresetMode.NEXT_STEP if autoreset else gym.vector.AutoresetMode.DISABLED
    return gym.vector.AsyncVectorEnv(fns, context="spawn", shared_memory=True, autoreset_mode=mode)


def _worker_env(kind: str, **kwargs: Any) -> gym.Env:
    # Ctrl-C reaches the whole process group; the parent handles it and closes the workers, so a
    # worker must not die half-way through a step. (gymnasium also calls this once in the parent,
    # for the spaces: leave the parent's handler alone.)
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return make_env(kind, **kwargs)
