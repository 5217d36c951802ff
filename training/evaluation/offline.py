"""Evaluating an offline goal-conditioned policy where its configuration says: OGBench's five
evaluation tasks (`ogbench_tasks`), or the embedded simulator's fixed-seed episodes per split
(`episodes`, the runner every online evaluation uses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recore_nav.episodes import EpisodeRecord
from training.evaluation.episodes import EvaluationSpec, evaluate
from training.evaluation.ogbench_tasks import evaluate_tasks

if TYPE_CHECKING:
    from training.methods.wm_crl import WMCRLAgent
    from training.offline import OfflineConfig


class GoalReachingPolicy:
    """An offline agent's deterministic policy on the embedded simulator: image(s) and robot-frame
    goal. With `frames` > 1 it keeps each environment's last images, as training stacked them (the
    first image repeated at an episode's start)."""

    def __init__(self, agent: WMCRLAgent, frames: int = 1):
        self.agent, self.frames = agent, frames
        self._history: dict[int, list[np.ndarray]] = {}

    def reset(self, index: int) -> None:
        self._history.pop(index, None)

    def act(self, obs: dict[str, np.ndarray], infos: list[dict[str, Any]]) -> np.ndarray:
        rgb = np.ascontiguousarray(obs["rgb"])
        if self.frames > 1:
            stacked = []
            for index, image in enumerate(rgb):
                history = self._history.get(index) or [image] * (self.frames - 1)
                stacked.append(np.concatenate([*history, image], axis=-1))
                self._history[index] = [*history[1:], image.copy()]   # obs arrays may be reused
            rgb = np.stack(stacked)
        goal = torch.from_numpy(np.asarray(obs["goal"], np.float32))
        return self.agent.act(torch.from_numpy(rgb), goal).cpu().numpy()


def evaluate_offline_policy(agent: WMCRLAgent, cfg: OfflineConfig, episodes: int, image_size: int = 64,
                            make_policy: Callable[[int], Any] | None = None) -> dict[str, list[EpisodeRecord]]:
    """Episodes per task ("task1".."task5") or per split, as `cfg.run.eval_env` says; the
    simulator renders at the policy's `image_size`, from reset seed `cfg.run.eval_seed_base`.
    `make_policy` (embedded only) drives the episodes instead of the agent itself, e.g. the
    agent's exported bundle behind the navigation node (`NodePolicies`)."""
    agent.eval()
    if cfg.run.eval_env == "embedded":
        out = {}
        for split in cfg.run.eval_splits:
            spec = EvaluationSpec(split=split, episodes=episodes, seed_base=cfg.run.eval_seed_base,
                                  image_size=image_size, workers=2, videos=0)
            out[split] = evaluate(make_policy or (lambda num_envs: GoalReachingPolicy(agent, cfg.data.frames)),
                                  spec).episodes
        return out

    def policy(observations: np.ndarray, goals: np.ndarray) -> np.ndarray:
        return agent.act(torch.from_numpy(observations), torch.from_numpy(goals)).cpu().numpy()
    return {f"task{task}": records for task, records in evaluate_tasks(cfg.run.eval_env, policy, episodes).items()}
