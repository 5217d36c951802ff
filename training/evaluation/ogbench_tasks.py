"""OGBench's evaluation tasks: each of an environment's five fixed start-goal pairs, episodes of
up to the environment's step limit, success as OGBench defines it (`info["success"]`: within the
goal tolerance). The `ogbench` package provides the environment (`env_only=True`: nothing is
downloaded); a task's episodes run side by side so the policy acts on a batch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from recore_nav.episodes import EpisodeRecord

TASKS = (1, 2, 3, 4, 5)
# policy(observations [N, D], goals [N, D]) -> actions [N, A] in [-1, 1]
GoalPolicy = Callable[[np.ndarray, np.ndarray], np.ndarray]


def make_ogbench_env(name: str):
    """The environment of an OGBench dataset name (e.g. pointmaze-medium-navigate-v0), no data."""
    import ogbench
    return ogbench.make_env_and_datasets(name, env_only=True)


def run_task(env_name: str, task_id: int, policy: GoalPolicy, episodes: int, seed: int = 0) -> list[EpisodeRecord]:
    """`episodes` episodes of one evaluation task; episode i is reset with seed `seed + i`."""
    envs = [make_ogbench_env(env_name) for _ in range(episodes)]
    observations, goals = [], []
    saved = np.random.get_state()
    try:
        for i, env in enumerate(envs):
            # OGBench perturbs a task's start and goal with numpy's global generator: seed it too,
            # so episode i is the same episode in every evaluation.
            np.random.seed(seed + i)
            ob, info = env.reset(seed=seed + i, options={"task_id": task_id, "render_goal": False})
            observations.append(ob)
            goals.append(info["goal"])
    finally:
        np.random.set_state(saved)
    observations, goals = np.asarray(observations, np.float32), np.asarray(goals, np.float32)
    active = np.ones(episodes, bool)
    returns, lengths = np.zeros(episodes), np.zeros(episodes, np.int64)
    success = np.zeros(episodes, bool)
    while active.any():
        index = np.flatnonzero(active)
        actions = np.asarray(policy(observations[index], goals[index]), np.float32)
        for row, i in enumerate(index):
            ob, reward, terminated, truncated, info = envs[i].step(actions[row])
            observations[i] = ob
            returns[i] += reward
            lengths[i] += 1
            if terminated or truncated:
                active[i] = False
                success[i] = bool(info.get("success", terminated))
    for env in envs:
        env.close()
    return [EpisodeRecord(success=bool(success[i]), spl=float("nan"), collisions=0, length=int(lengths[i]),
                          episode_return=float(returns[i]), seed=seed + i) for i in range(episodes)]


def evaluate_tasks(env_name: str, policy: GoalPolicy, episodes_per_task: int = 50,
                   tasks: tuple[int, ...] = TASKS) -> dict[int, list[EpisodeRecord]]:
    """Every evaluation task's episodes (OGBench: 50 a task). Task k's episode i has seed
    1000 k + i, so every episode of an evaluation has its own seed (to pair runs episode by episode)."""
    return {task: run_task(env_name, task, policy, episodes_per_task, seed=1000 * task) for task in tasks}
