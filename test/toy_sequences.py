"""Structured toy sequences in the replay-batch format, for tests and quick checks without a simulator.

A robot drives toward a wall: the image shows floor below a horizon and wall above it, the horizon
rising as the wall nears; a box sits at a column given by the goal bearing. Wall, floor and box
colours are drawn per sequence (the "style"), while depth and segmentation follow only the
geometry, as in the real environments. Reward is the decrease in goal distance, +10 on arrival.
"""

from __future__ import annotations

import numpy as np
import torch

FLOOR, WALL, OBSTACLE = 0, 1, 2


def toy_batch(batch: int, time_steps: int, size: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch dict of [B, T, ...] tensors with the keys and dtypes Agent.update expects."""
    rng = np.random.default_rng(seed)
    rgb = np.zeros((batch, time_steps, size, size, 3), np.uint8)
    depth = np.zeros((batch, time_steps, size, size, 1), np.float32)
    seg = np.zeros((batch, time_steps, size, size), np.uint8)
    goal = np.zeros((batch, time_steps, 3), np.float32)
    action = np.zeros((batch, time_steps, 2), np.float32)
    reward = np.zeros((batch, time_steps), np.float32)
    is_first = np.zeros((batch, time_steps), bool)
    is_terminal = np.zeros((batch, time_steps), bool)
    rows = np.arange(size)[:, None]
    cols = np.arange(size)[None, :]
    for b in range(batch):
        colours = rng.integers(0, 256, (3, 3))  # floor, wall, box
        wall_dist = rng.uniform(1.5, 6.0)
        goal_dist, bearing = rng.uniform(1.0, 5.0), rng.uniform(-np.pi, np.pi)
        prev = np.zeros(2, np.float32)
        for t in range(time_steps):
            is_first[b, t] = t == 0
            action[b, t] = prev
            if t > 0:
                advance = 0.25 * (prev[0] + 1.0)
                old = goal_dist
                wall_dist = max(0.5, wall_dist - advance)
                goal_dist = max(0.0, goal_dist - advance * np.cos(bearing))
                bearing = float(np.arctan2(np.sin(bearing - 0.8 * prev[1]), np.cos(bearing - 0.8 * prev[1])))
                reward[b, t] = old - goal_dist
                if goal_dist < 0.36:
                    reward[b, t] += 10.0
                    is_terminal[b, t] = True
            horizon = int(size * (0.5 - 0.4 / wall_dist))
            wall = np.broadcast_to(rows < size // 2, (size, size)) & (rows >= horizon)
            ceiling = rows < horizon
            box_col = int((0.5 + 0.5 * np.sin(bearing)) * (size - 8))
            box = (rows >= size // 2) & (rows < size // 2 + 8) & (cols >= box_col) & (cols < box_col + 8)
            label = np.where(wall | ceiling, WALL, FLOOR)
            label = np.where(box, OBSTACLE, label)
            seg[b, t] = label
            floor_depth = np.clip(size / (2.0 * np.maximum(rows - size // 2 + 1, 1)), 0.2, wall_dist)
            depth[b, t, :, :, 0] = np.where(label == FLOOR, floor_depth, wall_dist)
            depth[b, t, :, :, 0] = np.where(box, min(goal_dist + 0.5, wall_dist), depth[b, t, :, :, 0])
            rgb[b, t] = colours[label]
            goal[b, t] = (goal_dist, np.cos(bearing), np.sin(bearing))
            prev = rng.uniform(-1.0, 1.0, 2).astype(np.float32)
            if is_terminal[b, t]:
                break
    noise = rng.integers(-8, 9, rgb.shape)
    rgb = np.clip(rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    arrays = dict(rgb=rgb, depth=depth, seg=seg, goal=goal, action=action, reward=reward,
                  is_first=is_first, is_terminal=is_terminal)
    return {k: torch.from_numpy(v) for k, v in arrays.items()}
