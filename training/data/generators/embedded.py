"""Offline datasets from the embedded simulator (`recore_nav.sim`), with images, goals and poses.

- `navigate`: the shortest-path expert (`oracle_action`, `info["expert_action"]`) with Gaussian
  action noise, toward the goals the environment draws (1-10 m geodesic); an episode ends on
  success or after `steps`; a fresh layout every episode (reset seed `seed + i`);
- `stitch`: short noisy-expert fragments toward goals 1-3 m away (geodesic), several fragments
  per layout, so that longer routes exist only as fragments put together;
- `explore`: goal-agnostic driving: a random (forward speed, turn) held for 10 steps, and on a
  collision a bounce (back up while turning for a few steps); `goal` is NaN throughout, and
  episodes run their full length (the environment's goal never ends one).

Stored per step: `observations` = `robot_pose` = (x, y, yaw) float32, `rgb` uint8, `goal` (the
episode's goal in the robot frame), `actions` (the command executed), and `depth` float16 where
asked. An episode that ends by success or time limit also stores its final state (its action,
the expert's or the driver's next command, is never executed: that step is not valid).
Seeds stay below the evaluation seeds (`EVAL_SEED_BASE`), so no evaluation episode is in the data.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from recore_nav.sim.env import TaskConfig
from recore_nav.sim.factory import make_env
from training.data.datasets import DatasetBuilder
from training.data.generators import Generated, dataset_size, noisy
from training.evaluation.episodes import EVAL_SEED_BASE

# dataset type -> (episodes, stored steps per episode at most, action noise)
DEFAULTS = {"navigate": (500, 501, 0.5), "stitch": (2000, 101, 0.5), "explore": (500, 201, 0.3)}
STITCH_GOAL_DISTANCE = (1.0, 3.0)   # m, geodesic
STITCH_FRAGMENTS_PER_LAYOUT = 10
EXPLORE_HOLD_STEPS = 10
EXPLORE_SUCCESS_RADIUS = 1e-9       # m: explore episodes never end at the (unused) goal
BOUNCE_STEPS = 5                    # after a collision: back up and turn this many steps
BOUNCE_COMMAND = (-0.6, 1.0)        # (linear, |angular|) of a bounce; the turn's side is random


def bytes_per_step(image_size: int, depth: bool) -> int:
    """Stored bytes of one step: the images dominate (rgb uint8, depth float16)."""
    pixels = image_size * image_size
    return pixels * 3 + (2 * pixels if depth else 0) + 4 * (3 + 2 + 1 + 3 + 3)


def check_memory(episodes: int, steps: int, image_size: int, depth: bool, budget_gb: float) -> float:
    """Bytes the dataset can reach; ValueError saying how to fit when that exceeds `budget_gb`."""
    need = episodes * steps * bytes_per_step(image_size, depth)
    if need > budget_gb * 1e9:
        raise ValueError(f"{episodes:,} episodes x {steps:,} steps of {image_size}x{image_size} images"
                         f"{' with depth' if depth else ''} can reach {need / 1e9:.1f} GB, over the "
                         f"{budget_gb:g} GB budget: lower --episodes, --steps or --image-size, or raise --max-gb")
    return need


class ExploreDriver:
    """Goal-agnostic driving: a random command held for a while, a bounce off whatever it hits."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.command = np.zeros(2)
        self.held = 0
        self.bouncing = 0

    def reset(self) -> None:
        self.held = EXPLORE_HOLD_STEPS
        self.bouncing = 0

    def __call__(self, collided: bool) -> np.ndarray:
        if collided and not self.bouncing:
            side = self.rng.choice((-1.0, 1.0))
            self.command = np.array([BOUNCE_COMMAND[0], side * BOUNCE_COMMAND[1]])
            self.bouncing = BOUNCE_STEPS
        if self.bouncing:
            self.bouncing -= 1
            if not self.bouncing:
                self.held = EXPLORE_HOLD_STEPS     # a new command once the bounce is over
            return self.command
        if self.held >= EXPLORE_HOLD_STEPS:
            self.command = np.array([self.rng.uniform(0.0, 1.0), self.rng.uniform(-1.0, 1.0)])
            self.held = 0
        self.held += 1
        return self.command


def generate(dataset_type: str, episodes: int | None = None, steps: int | None = None, seed: int = 0,
             noise: float | None = None, split: str = "train", image_size: int = 64, depth: bool = False,
             max_gb: float = 4.0, progress: bool = True) -> Generated:
    """An embedded-simulator dataset of `dataset_type`; None takes this module's default size and noise.

    Refuses (ValueError) before simulating anything when the images could exceed `max_gb`.
    """
    episodes, steps, noise = dataset_size(DEFAULTS, dataset_type, episodes, steps, noise)
    if seed < 0 or seed + episodes > EVAL_SEED_BASE:
        raise ValueError(f"seeds {seed}..{seed + episodes - 1} reach the evaluation seeds from {EVAL_SEED_BASE:,}")
    check_memory(episodes, steps, image_size, depth, max_gb)

    task_config = None
    if dataset_type == "stitch":
        task_config = TaskConfig(min_goal_distance=STITCH_GOAL_DISTANCE[0], max_goal_distance=STITCH_GOAL_DISTANCE[1],
                                 episodes_per_layout=STITCH_FRAGMENTS_PER_LAYOUT)
    elif dataset_type == "explore":
        # The environment still draws a goal; a radius no robot meets keeps it from ending the episode.
        task_config = TaskConfig(success_radius=EXPLORE_SUCCESS_RADIUS)
    # The environment's own limit leaves room for the final state: at most `steps` stored steps.
    env = make_env("embedded", split=split, image_size=image_size, seed=seed, max_steps=steps - 1,
                   **({"task_config": task_config} if task_config else {}))
    rng = np.random.default_rng(seed)
    driver = ExploreDriver(rng)
    builder = DatasetBuilder(episodes * steps)
    successes = collisions = 0
    started = time.perf_counter()
    bar = tqdm(range(episodes), desc=f"embedded-{dataset_type}", unit="ep", disable=not progress)
    for episode in bar:
        # Stitch keeps a layout for several fragments: only its first reset is seeded (by the env).
        obs, info = env.reset(seed=None if dataset_type == "stitch" else seed + episode)
        driver.reset()
        done = False
        while True:
            if dataset_type == "explore":
                action = noisy(driver(bool(info.get("collision", False))), noise, rng)
                goal = np.full(3, np.nan, np.float32)
            else:
                action = noisy(info["expert_action"], noise, rng) if not done else info["expert_action"]
                goal = obs["goal"]
            pose = np.asarray(info["robot_pose"], dtype=np.float32)
            step = {"observations": pose, "robot_pose": pose, "rgb": obs["rgb"], "goal": goal, "actions": action}
            if depth:
                step["depth"] = obs["depth"].astype(np.float16)
            builder.append(**step)
            if done:
                break
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        builder.end_trajectory()
        successes += bool(info["success"])
        collisions += int(info["collisions"])
        bar.set_postfix(success=f"{successes / (episode + 1):.2f}", steps=builder.size)
    seconds = time.perf_counter() - started
    env.close()
    return Generated(builder.arrays(), {
        "episodes": episodes, "steps": builder.size, "seconds": seconds, "steps_per_second": builder.size / seconds,
        "success_rate": successes / episodes, "collisions_per_episode": collisions / episodes, "noise": noise})
