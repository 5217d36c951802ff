"""Stepping a vector of environments with a batch policy: how online training turns steps into
replay steps and episode records.

A `BatchPolicy` acts for every environment of a vector at once and is told when one of them
starts a new episode. `RandomPolicy` and `ExpertPolicy` prefill a replay; `PerEnvPolicies` turns
single-environment policies (the bundle runtime, the baselines) into one; the trainer's agent is
another (`training.trainer.AgentPolicy`). `Collector` steps a vector env made with next-step
autoreset (`recore_nav.sim.factory.make_vector_env`) and writes each step into the replay in the
Dreamer convention; evaluation episodes run in `training.evaluation.episodes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from recore_nav.episodes import EpisodeRecord
from recore_nav.task import ACTION_DIM


class BatchPolicy(Protocol):
    """Actions for a vector of N environments."""

    def reset(self, index: int) -> None:
        """Environment `index` starts a new episode (forget what belongs to its last one)."""

    def act(self, obs: dict[str, np.ndarray], infos: list[dict[str, Any]]) -> np.ndarray:
        """[N, 2] actions in [-1, 1] for the batched observations; `infos[i]` is env i's latest info."""


class SingleEnvPolicy(Protocol):
    """A policy for one environment: the bundle runtime's and the baselines' surface."""

    def reset(self) -> None: ...

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray: ...


class PerEnvPolicies:
    """One single-environment policy per environment of a vector."""

    def __init__(self, policies: Sequence[SingleEnvPolicy]):
        self.policies = list(policies)

    def reset(self, index: int) -> None:
        self.policies[index].reset()

    def act(self, obs: dict[str, np.ndarray], infos: list[dict[str, Any]]) -> np.ndarray:
        return np.stack([policy.act({key: value[i] for key, value in obs.items()}, infos[i])
                         for i, policy in enumerate(self.policies)]).astype(np.float32)


class RandomPolicy:
    """Uniform random actions."""

    def __init__(self, num_envs: int, rng: np.random.Generator):
        self.num_envs, self.rng = num_envs, rng

    def reset(self, index: int) -> None:
        pass

    def act(self, obs: dict[str, np.ndarray], infos: list[dict[str, Any]]) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, (self.num_envs, ACTION_DIM)).astype(np.float32)


class ExpertPolicy:
    """The simulator's shortest-path expert (`info["expert_action"]`) with Gaussian action noise:
    imperfect demonstrations that still reach goals, so reward and continuation heads see
    successes from the start. Environments without an expert get uniform random actions."""

    def __init__(self, num_envs: int, noise_std: float, rng: np.random.Generator):
        self.num_envs, self.noise_std, self.rng = num_envs, noise_std, rng

    def reset(self, index: int) -> None:
        pass

    def act(self, obs: dict[str, np.ndarray], infos: list[dict[str, Any]]) -> np.ndarray:
        action = expert_actions(infos) + self.rng.normal(0.0, self.noise_std, (self.num_envs, ACTION_DIM))
        missing = ~np.isfinite(action).all(-1)
        action[missing] = self.rng.uniform(-1.0, 1.0, (int(missing.sum()), ACTION_DIM))
        return action.astype(np.float32)


def env_infos(info: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """A vector env's info (arrays with a `_key` mask) as one dict per environment."""
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, values in info.items():
        if key.startswith("_"):
            continue
        mask = info.get(f"_{key}", np.ones(num_envs, bool))
        for i in range(num_envs):
            if mask[i]:
                out[i][key] = values[i]
    return out


def expert_actions(infos: list[dict[str, Any]]) -> np.ndarray:
    """[N, 2] expert commands; NaN for environments without an expert."""
    out = np.full((len(infos), ACTION_DIM), np.nan, np.float32)
    for i, info in enumerate(infos):
        if "expert_action" in info:
            out[i] = np.asarray(info["expert_action"], np.float32)
    return out


class Collector:
    """Steps a next-step-autoreset vector env with a policy, writing into a replay and returning
    finished episodes.

    After an episode ends, the env's next step ignores the action and returns the new episode's
    first observation; that step is stored as `is_first` with a zero action and reward, exactly
    the Dreamer convention. Every observation is in the replay before the policy acts on it.
    """

    def __init__(self, envs: gym.vector.VectorEnv, seed: int | list[int] | None = None, replay=None):
        self.envs = envs
        self.replay = replay
        self.num_envs = envs.num_envs
        self.obs, info = envs.reset(seed=seed)
        self.infos = env_infos(info, self.num_envs)
        self.is_first = np.ones(self.num_envs, bool)
        self.done = np.zeros(self.num_envs, bool)     # the current observation ended its episode
        self.returns = np.zeros(self.num_envs)
        for i in range(self.num_envs):
            self._store(i, np.zeros(ACTION_DIM, np.float32), 0.0, terminal=False)

    def step(self, policy: BatchPolicy, while_stepping: Callable[[], None] | None = None) -> list[EpisodeRecord]:
        """One step of every env; the episodes that ended in it. `while_stepping` runs (e.g.
        gradient updates) while the env processes simulate."""
        for i in np.flatnonzero(self.is_first):
            policy.reset(int(i))
        action = np.clip(np.asarray(policy.act(self.obs, self.infos), np.float32), -1.0, 1.0)
        self.envs.step_async(action)
        if while_stepping is not None:
            while_stepping()
        self.obs, reward, terminated, truncated, info = self.envs.step_wait()
        self.infos = env_infos(info, self.num_envs)
        finished = []
        for i in range(self.num_envs):
            if self.done[i]:   # autoreset: a new episode's first observation
                self.is_first[i], self.done[i] = True, False
                self.returns[i] = 0.0
                self._store(i, np.zeros(ACTION_DIM, np.float32), 0.0, terminal=False)
                continue
            self.is_first[i] = False
            self.returns[i] += float(reward[i])
            self.done[i] = bool(terminated[i] or truncated[i])
            self._store(i, action[i], float(reward[i]), terminal=bool(terminated[i]))
            if self.done[i]:
                finished.append(EpisodeRecord.from_info(self.infos[i], self.returns[i]))
        return finished

    def _store(self, i: int, action: np.ndarray, reward: float, terminal: bool) -> None:
        if self.replay is None:
            return
        expert = self.infos[i].get("expert_action")
        step = {"rgb": self.obs["rgb"][i], "depth": self.obs["depth"][i], "seg": self.obs["seg"][i],
                "goal": self.obs["goal"][i], "action": action, "reward": np.float32(reward),
                "is_first": bool(self.is_first[i]), "is_terminal": terminal,
                "expert_action": (np.asarray(expert, np.float32) if expert is not None
                                  else np.full(ACTION_DIM, np.nan, np.float32))}
        self.replay.add_step(i, step, episode_over=bool(self.done[i]))
