"""Stepping environments with the agent: the one place that knows how envs are made and how a
vector env's steps become replay steps and episode results.

`make_env` / `make_vector_env` build the embedded MuJoCo simulator or the iGibson adapter
behind the same contract (ARCHITECTURE.md). `Collector` drives a vector env with any batched
policy, writes every step into the replay in the Dreamer convention, and reports each finished
episode. `evaluate_agent` runs fixed-seed evaluation episodes (episode i uses seed
EVAL_SEED_BASE + i, the same as `training/evaluate.py`), so numbers logged during training and
numbers of the exported bundle describe the same episodes.
"""

from __future__ import annotations

import functools
import multiprocessing
import signal
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from recore_nav.geometry import ACTION_DIM

ENV_KINDS = ("embedded", "igibson")
EVAL_SEED_BASE = 1_000_000   # far from training seeds, so evaluation episodes are never trained on

# policy(obs batch, prev_action [N,2], is_first [N]) -> action [N,2]; it keeps its own state.
BatchPolicy = Callable[[dict[str, np.ndarray], np.ndarray, np.ndarray], np.ndarray]


def make_env(kind: str, split: str, image_size: int = 64, seed: int | None = None,
             max_steps: int = 500, **kwargs: Any) -> gym.Env:
    """One point-goal environment of `kind` (embedded | igibson)."""
    if kind == "embedded":
        from recore_nav.sim import PointNavEnv
        return PointNavEnv(split=split, image_size=image_size, seed=seed, max_steps=max_steps, **kwargs)
    if kind == "igibson":
        from training.igibson_env import IGibsonPointNavEnv
        return IGibsonPointNavEnv(split=split, image_size=image_size, seed=seed, max_steps=max_steps, **kwargs)
    raise ValueError(f"unknown env {kind!r}; expected one of {ENV_KINDS}")


def make_vector_env(kind: str, num_envs: int, split: str, seed: int, image_size: int = 64,
                    max_steps: int = 500) -> gym.vector.AsyncVectorEnv:
    """`num_envs` envs in spawned processes (one GL context each); env i is seeded seed + i."""
    if kind == "igibson":
        from training.igibson_env import require_igibson
        require_igibson()   # fail here with the install hint, not inside a worker
    fns = [functools.partial(_worker_env, kind, split, image_size, seed + i, max_steps) for i in range(num_envs)]
    return gym.vector.AsyncVectorEnv(fns, context="spawn", shared_memory=True)


def _worker_env(*args: Any) -> gym.Env:
    # Ctrl-C reaches the whole process group; the trainer handles it and closes the workers, so
    # a worker must not die half-way through a step. (gymnasium also calls this once in the
    # parent, for the spaces: leave the parent's handler alone.)
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return make_env(*args)


@dataclass
class EpisodeResult:
    success: bool
    spl: float
    episode_return: float
    length: int
    collisions: int


def _info_at(info: dict[str, Any], key: str, i: int, default: Any = 0) -> Any:
    """Entry i of a vector env's info (arrays with a `_key` mask)."""
    if key not in info or not info.get(f"_{key}", np.ones(i + 1, bool))[i]:
        return default
    return info[key][i]


def _expert_actions(info: dict[str, Any], num_envs: int) -> np.ndarray:
    """[N, 2] expert commands from a vector env's info; NaN for envs without an expert."""
    out = np.full((num_envs, ACTION_DIM), np.nan, np.float32)
    if "expert_action" in info:
        mask = info.get("_expert_action", np.ones(num_envs, bool))
        out[mask] = np.asarray(info["expert_action"], np.float32)[mask]
    return out


def expert_policy(collector: "Collector", noise_std: float, rng: np.random.Generator) -> BatchPolicy:
    """The simulator's shortest-path expert with Gaussian action noise (expert-seeded prefill:
    imperfect demonstrations that still reach goals, so reward and continuation heads see
    successes from the start). Envs without an expert get uniform random actions."""
    def act(obs: dict[str, np.ndarray], prev_action: np.ndarray, is_first: np.ndarray) -> np.ndarray:
        action = collector.expert_action + rng.normal(0.0, noise_std, collector.expert_action.shape)
        missing = ~np.isfinite(action).all(-1)
        action[missing] = rng.uniform(-1.0, 1.0, (int(missing.sum()), ACTION_DIM))
        return action.astype(np.float32)
    return act


class Collector:
    """Steps a vector env with a policy, writing into a replay and returning finished episodes.

    gymnasium's next-step autoreset: after an episode ends, the env's next step ignores the
    action and returns the new episode's first observation; that step is stored as `is_first`
    with a zero action and reward, exactly the Dreamer convention. Every observation is in the
    replay before the policy acts on it.
    """

    def __init__(self, envs: gym.vector.VectorEnv, seed: int | list[int] | None = None, replay=None):
        self.envs = envs
        self.replay = replay
        self.num_envs = envs.num_envs
        self.obs, info = envs.reset(seed=seed)
        self.expert_action = _expert_actions(info, self.num_envs)   # the expert's command at self.obs
        self.is_first = np.ones(self.num_envs, bool)
        self.done = np.zeros(self.num_envs, bool)     # the current observation ended its episode
        self.prev_action = np.zeros((self.num_envs, ACTION_DIM), np.float32)
        self.returns = np.zeros(self.num_envs)
        for i in range(self.num_envs):
            self._store(i, np.zeros(ACTION_DIM, np.float32), 0.0, terminal=False)

    def step(self, policy: BatchPolicy, while_stepping: Callable[[], None] | None = None) -> list[EpisodeResult]:
        """One step of every env; the episodes that ended in it. `while_stepping` runs (e.g.
        gradient updates) while the env processes simulate."""
        action = np.clip(np.asarray(policy(self.obs, self.prev_action, self.is_first), np.float32), -1.0, 1.0)
        self.envs.step_async(action)
        if while_stepping is not None:
            while_stepping()
        self.obs, reward, terminated, truncated, info = self.envs.step_wait()
        self.expert_action = _expert_actions(info, self.num_envs)
        finished = []
        for i in range(self.num_envs):
            if self.done[i]:   # autoreset: a new episode's first observation
                self.is_first[i], self.done[i] = True, False
                self.prev_action[i] = 0.0
                self.returns[i] = 0.0
                self._store(i, self.prev_action[i], 0.0, terminal=False)
                continue
            self.is_first[i] = False
            self.prev_action[i] = action[i]
            self.returns[i] += float(reward[i])
            self.done[i] = bool(terminated[i] or truncated[i])
            self._store(i, action[i], float(reward[i]), terminal=bool(terminated[i]))
            if self.done[i]:
                finished.append(EpisodeResult(
                    success=bool(_info_at(info, "success", i, False)), spl=float(_info_at(info, "spl", i, 0.0)),
                    episode_return=float(self.returns[i]), length=int(_info_at(info, "steps", i, 0)),
                    collisions=int(_info_at(info, "collisions", i, 0))))
        return finished

    def _store(self, i: int, action: np.ndarray, reward: float, terminal: bool) -> None:
        if self.replay is None:
            return
        step = {"rgb": self.obs["rgb"][i], "depth": self.obs["depth"][i], "seg": self.obs["seg"][i],
                "goal": self.obs["goal"][i], "action": action, "reward": np.float32(reward),
                "is_first": bool(self.is_first[i]), "is_terminal": terminal,
                "expert_action": self.expert_action[i]}
        self.replay.add_step(i, step, episode_over=bool(self.done[i]))


def run_eval_episodes(envs: gym.vector.VectorEnv, make_policy: Callable[[], BatchPolicy], episodes: int,
                      seed_base: int = EVAL_SEED_BASE) -> list[EpisodeResult]:
    """Episodes seed_base + 0 .. episodes - 1, in rounds of one episode per env.

    A round resets every env with its episode's seed and steps until each has finished once;
    an env that finished early idles (its later steps are ignored)."""
    results: list[EpisodeResult] = []
    n = envs.num_envs
    for first in range(0, episodes, n):
        count = min(n, episodes - first)
        seeds = [seed_base + first + i for i in range(n)]
        collector = Collector(envs, seed=seeds)
        policy = make_policy()
        round_results: dict[int, EpisodeResult] = {}
        while len(round_results) < count:
            done_before = collector.done.copy()
            ended = collector.step(policy)
            ended_envs = [i for i in range(n) if collector.done[i] and not done_before[i]]
            for i, result in zip(ended_envs, ended):
                if i < count and i not in round_results:
                    round_results[i] = result
        results.extend(round_results[i] for i in range(count))
    return results
