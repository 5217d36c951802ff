"""OGBench pointmaze datasets, made here the way OGBench made its own (its downloads are unreachable).

The environment is the `ogbench` package's (`make_env_and_datasets(name, env_only=True)`: no
dataset is ever downloaded); the data follow OGBench's `data_gen_scripts/generate_locomaze.py`:
- `navigate`: start in any free cell, goal in a vertex cell (not a straight hallway cell); the
  noisy expert steers toward the environment's oracle subgoal and a new vertex-cell goal is
  drawn on every arrival; 1,000 episodes of 1,001 steps, noise 0.5;
- `stitch`: start in any free cell, goal a cell 4 steps away (breadth-first), reached and held;
  5,000 episodes of 201 steps, noise 0.5;
- `explore`: a random direction redrawn every 10 steps, whatever the goal; noise 1.0, 10,000
  episodes of 501 steps (OGBench made explore data for antmaze only, at these sizes).
Observations are OGBench's pointmaze observation (x, y); `goal` is the goal in force seen from
the point, which has no heading: (distance, cos, sin) of the world-frame direction, NaN in explore.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from tqdm import tqdm

from recore_nav.geometry import goal_in_robot_frame
from training.data.datasets import DatasetBuilder
from training.data.generators import Generated, dataset_size, noisy

MAZES = ("medium", "large")
# dataset type -> (episodes, steps per episode, action noise): OGBench's data_gen_scripts/commands.sh
DEFAULTS = {"navigate": (1000, 1001, 0.5), "stitch": (5000, 201, 0.5), "explore": (10000, 501, 1.0)}
STITCH_CELLS = 4            # stitch goals are this many cells from the start, breadth-first
EXPLORE_HOLD_STEPS = 10     # explore redraws its direction this often


def make_pointmaze(maze: str, max_episode_steps: int):
    """OGBench's pointmaze environment alone, never terminating at the goal (as its generator runs it)."""
    if maze not in MAZES:
        raise ValueError(f"unknown pointmaze {maze!r}; expected one of {MAZES}")
    import ogbench  # the `train` extra; imported here so the rest of training/data does not need it

    return ogbench.make_env_and_datasets(f"pointmaze-{maze}-navigate-v0", env_only=True,
                                         terminate_at_goal=False, max_episode_steps=max_episode_steps)


def free_and_vertex_cells(maze_map: np.ndarray) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Free cells, and those of them that are not the inside of a straight hallway (goal cells)."""
    free, vertex = [], []
    for i, j in zip(*np.nonzero(maze_map == 0)):
        free.append((int(i), int(j)))
        vertical = maze_map[i - 1, j] == 0 and maze_map[i + 1, j] == 0 and maze_map[i, j - 1] and maze_map[i, j + 1]
        horizontal = maze_map[i, j - 1] == 0 and maze_map[i, j + 1] == 0 and maze_map[i - 1, j] and maze_map[i + 1, j]
        if not (vertical or horizontal):
            vertex.append((int(i), int(j)))
    return free, vertex


def cells_at_distance(maze_map: np.ndarray, start: tuple[int, int], steps: int) -> list[tuple[int, int]]:
    """Free cells exactly `steps` 4-connected moves from `start` by the shortest route."""
    distance = {start: 0}
    queue = deque([start])
    while queue:
        i, j = queue.popleft()
        for ni, nj in ((i - 1, j), (i, j - 1), (i + 1, j), (i, j + 1)):
            if (0 <= ni < maze_map.shape[0] and 0 <= nj < maze_map.shape[1] and maze_map[ni, nj] == 0
                    and (ni, nj) not in distance):
                distance[(ni, nj)] = distance[(i, j)] + 1
                queue.append((ni, nj))
    return [cell for cell, d in distance.items() if d == steps]


class OracleDirection:
    """Unit direction toward the environment's oracle subgoal (`get_oracle_subgoal`).

    The subgoal depends only on the cells of the point and the goal, so it is computed once per
    pair of cells (the environment runs a breadth-first search over the maze on every call).
    """

    def __init__(self, maze_env) -> None:
        self.env = maze_env
        self._subgoals: dict[tuple, np.ndarray] = {}

    def __call__(self, xy: np.ndarray, goal_xy: np.ndarray) -> np.ndarray:
        key = (self.env.xy_to_ij(xy), self.env.xy_to_ij(goal_xy))
        if key not in self._subgoals:
            self._subgoals[key] = np.asarray(self.env.get_oracle_subgoal(xy, goal_xy)[0], dtype=np.float64)
        direction = self._subgoals[key] - xy
        return direction / (np.linalg.norm(direction) + 1e-6)


def generate(dataset_type: str, maze: str = "medium", episodes: int | None = None, steps: int | None = None,
             seed: int = 0, noise: float | None = None, progress: bool = True) -> Generated:
    """A pointmaze dataset of `dataset_type`; None takes OGBench's size and noise for that type."""
    episodes, steps, noise = dataset_size(DEFAULTS, dataset_type, episodes, steps, noise)

    env = make_pointmaze(maze, steps)
    maze_env = env.unwrapped
    rng = np.random.default_rng(seed)
    np.random.seed(seed)            # OGBench's resets draw their position noise from numpy's global state
    env.reset(seed=seed)
    env.action_space.seed(seed)
    free, vertex = free_and_vertex_cells(maze_env.maze_map)
    oracle = OracleDirection(maze_env)
    builder = DatasetBuilder(episodes * steps)
    arrivals = 0
    episodes_reaching_goal = 0
    no_goal = np.full(3, np.nan, np.float32)
    started = time.perf_counter()
    for _ in tqdm(range(episodes), desc=f"pointmaze-{maze}-{dataset_type}", unit="ep", disable=not progress):
        start = free[rng.integers(len(free))]
        if dataset_type == "stitch":
            nearby = cells_at_distance(maze_env.maze_map, start, STITCH_CELLS)
            goal_cell = nearby[rng.integers(len(nearby))] if nearby else start
        else:
            goal_cell = vertex[rng.integers(len(vertex))]
        ob, _ = env.reset(options={"task_info": {"init_ij": start, "goal_ij": goal_cell}})
        reached = False
        for t in range(steps):
            xy = np.asarray(ob, dtype=np.float64)
            goal_xy = np.asarray(maze_env.cur_goal_xy, dtype=np.float64)
            if dataset_type == "explore":
                if t % EXPLORE_HOLD_STEPS == 0:
                    heading = rng.normal(size=2)
                    heading /= np.linalg.norm(heading) + 1e-6
                direction, goal = heading, no_goal
            else:
                direction = oracle(xy, goal_xy)
                goal = goal_in_robot_frame(xy[0], xy[1], 0.0, goal_xy[0], goal_xy[1])
            action = noisy(direction, noise, rng)
            builder.append(observations=xy.astype(np.float32), actions=action, goal=goal)
            ob, _, _, _, info = env.step(action)
            if info["success"] and dataset_type != "explore":
                reached = True
                if dataset_type == "navigate":
                    arrivals += 1
                    maze_env.set_goal(goal_ij=vertex[rng.integers(len(vertex))])
        builder.end_trajectory()
        episodes_reaching_goal += reached
    seconds = time.perf_counter() - started
    env.close()
    return Generated(builder.arrays(), {
        "episodes": episodes, "steps": builder.size, "seconds": seconds, "steps_per_second": builder.size / seconds,
        "goals_reached": arrivals, "episodes_reaching_goal": episodes_reaching_goal, "noise": noise})
