"""Top-down map pictures of a layout with the robot, goal and paths (gallery, evaluation videos)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from recore_nav.sim.layout import TraversabilityMap
from recore_nav.task import SUCCESS_RADIUS

# RGB colours
_OCCUPIED = (70, 70, 80)
_INFLATED = (200, 200, 205)     # free, but too close to a solid for the robot's centre
_FREE = (250, 250, 250)
_PATH = (40, 90, 220)
_SHORTEST = (60, 180, 90)
_ROBOT = (220, 50, 50)
_GOAL = (30, 150, 60)


def render_top_down(grid: TraversabilityMap, path: Sequence[tuple[float, float]],
                    robot_pose: tuple[float, float, float] | None, goal: tuple[float, float] | None,
                    shortest_path: Sequence[tuple[float, float]] = (), pixels_per_metre: float = 24.0,
                    success_radius: float = SUCCESS_RADIUS, robot_radius: float = 0.18) -> np.ndarray:
    """uint8 (H, W, 3) picture, north (+y) up: solids dark, the inflation zone grey, reachable
    floor white; the shortest path green, the driven path blue, the robot red, the goal green."""
    image = np.empty((*grid.shape, 3), dtype=np.uint8)
    image[:] = _INFLATED
    image[grid.occupied] = _OCCUPIED
    image[grid.reachable] = _FREE
    scale = pixels_per_metre * grid.resolution
    height, width = int(round(grid.shape[0] * scale)), int(round(grid.shape[1] * scale))
    image = np.ascontiguousarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)[::-1])

    def pixel(x: float, y: float) -> tuple[int, int]:
        return (int(round((x - grid.origin[0]) * pixels_per_metre)),
                int(round(height - (y - grid.origin[1]) * pixels_per_metre)))

    thickness = max(1, int(round(pixels_per_metre / 20)))
    if len(shortest_path) > 1:
        cv2.polylines(image, [np.array([pixel(*p) for p in shortest_path], np.int32)], False, _SHORTEST, thickness,
                      cv2.LINE_AA)
    if goal is not None:
        cv2.circle(image, pixel(*goal), max(2, int(success_radius * pixels_per_metre)), _GOAL, thickness, cv2.LINE_AA)
        cv2.circle(image, pixel(*goal), max(1, thickness + 1), _GOAL, -1, cv2.LINE_AA)
    if len(path) > 1:
        cv2.polylines(image, [np.array([pixel(*p) for p in path], np.int32)], False, _PATH, thickness, cv2.LINE_AA)
    if robot_pose is not None:
        x, y, yaw = robot_pose
        r = robot_radius
        cv2.circle(image, pixel(x, y), max(2, int(r * pixels_per_metre)), _ROBOT, -1, cv2.LINE_AA)
        cv2.line(image, pixel(x, y), pixel(x + 1.8 * r * math.cos(yaw), y + 1.8 * r * math.sin(yaw)), _ROBOT,
                 thickness + 1, cv2.LINE_AA)
    return image
