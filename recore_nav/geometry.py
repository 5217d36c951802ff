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


def goal_in_robot_frame(robot_x: float, robot_y: float, robot_yaw: float,
                        goal_x: float, goal_y: float) -> np.ndarray:
    """The goal as (distance, cos bearing, sin bearing) seen from the robot's pose."""
    dx, dy = goal_x - robot_x, goal_y - robot_y
    distance = math.hypot(dx, dy)
    bearing = math.atan2(dy, dx) - robot_yaw
    return np.array([distance, math.cos(bearing), math.sin(bearing)], dtype=np.float32)


def wrap_angle(angle: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi
