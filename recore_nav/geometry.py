"""Planar geometry shared by the simulator, the navigation node and training.

A goal in the robot frame is (distance m, cos bearing, sin bearing), float32 (GOAL_DIM,) of
`recore_nav.task`.
"""

from __future__ import annotations

import math

import numpy as np


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Heading (rad) about +z of a quaternion; the robot moves in the plane."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quaternion_from_yaw(yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by yaw about +z."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def goals_in_robot_frame(robot_poses: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """Goals [N, 2] (x, y) as (distance, cos bearing, sin bearing) [N, 3] float32, seen from robot
    poses [N, 3] (x, y, yaw)."""
    robot_poses, goals = np.asarray(robot_poses, np.float64), np.asarray(goals, np.float64)
    dx, dy = goals[:, 0] - robot_poses[:, 0], goals[:, 1] - robot_poses[:, 1]
    bearing = np.arctan2(dy, dx) - robot_poses[:, 2]
    return np.stack([np.hypot(dx, dy), np.cos(bearing), np.sin(bearing)], -1).astype(np.float32)


def goal_in_robot_frame(robot_x: float, robot_y: float, robot_yaw: float,
                        goal_x: float, goal_y: float) -> np.ndarray:
    """The goal as (distance, cos bearing, sin bearing) seen from the robot's pose."""
    return goals_in_robot_frame(np.array([[robot_x, robot_y, robot_yaw]]), np.array([[goal_x, goal_y]]))[0]


def wrap_angle(angle: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi
