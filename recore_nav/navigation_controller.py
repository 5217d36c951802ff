"""The navigation node's decisions, in plain Python: goal, staleness, safety stops, limits.

`NavigationController` is fed inputs as they arrive (image, odometry, goal, each with the time it
was received) and asked for a command once per control period with `tick(now)`. It returns zero
velocity whenever it cannot drive safely (no goal, goal reached, missing, stale or invalid input,
policy error) together with a status line that says why. After the speed and acceleration limits,
a `CollisionMonitor` (when given) has the last word on the command. The command actually sent is
what the policy is told it did last step (`prev_action`). The ROS node around it only converts
messages; tests and evaluation drive it directly with a real `PolicyRuntime`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recore_nav import task
from recore_nav.collision_monitor import STOPPED, CollisionMonitor
from recore_nav.geometry import goal_in_robot_frame, quaternion_from_yaw, yaw_from_quaternion

IDLE = "idle"
NAVIGATING = "navigating"
REACHED = "reached"
# STOPPED ("stopped: <reason>") is the collision monitor's word too, so it lives there.
# Orientation quaternions whose norm is further than this from 1 are broken, not merely rounded.
UNIT_QUATERNION_TOLERANCE = 0.01


class Policy(Protocol):
    """What the controller needs from a policy; `recore_nav.policy.PolicyRuntime` is one."""

    def reset(self) -> None: ...

    def step(self, rgb: np.ndarray, goal: np.ndarray, prev_action: np.ndarray | None = None) -> np.ndarray: ...


@dataclass
class ControllerConfig:
    """Limits and timeouts; speeds in m/s and rad/s, accelerations in m/s^2 and rad/s^2, times in s."""

    control_period: float = task.CONTROL_DT
    goal_tolerance: float = task.SUCCESS_RADIUS
    image_timeout: float = 0.5
    odom_timeout: float = 0.5
    action_linear_scale: float = task.MAX_LINEAR_SPEED    # m/s that action[0] = 1 means (the bundle's)
    action_angular_scale: float = task.MAX_ANGULAR_SPEED  # rad/s that action[1] = 1 means (the bundle's)
    max_linear_speed: float = task.MAX_LINEAR_SPEED
    max_angular_speed: float = task.MAX_ANGULAR_SPEED
    max_linear_accel: float = 1.0
    max_angular_accel: float = 3.0
    command_feedback: bool = True   # the policy's prev_action is the command sent, not its own action


@dataclass(frozen=True)
class Command:
    """What to publish this period: velocities and the status line."""

    linear: float
    angular: float
    status: str

    @property
    def is_stop(self) -> bool:
        return self.linear == 0.0 and self.angular == 0.0


@dataclass(frozen=True)
class OdometryReading:
    """One odometry message's pose and twist, as received (nothing derived from them yet)."""

    frame_id: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]        # quaternion x, y, z, w
    linear_velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    angular_velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def planar(cls, x: float, y: float, yaw: float, frame_id: str) -> OdometryReading:
        """A pose in the plane (a simulator's), at rest."""
        return cls(frame_id, (x, y, 0.0), quaternion_from_yaw(yaw))


def odometry_problem(reading: OdometryReading) -> str | None:
    """Why an odometry reading cannot be used (position, orientation, twist), or None."""
    if not all(math.isfinite(v) for v in reading.position):
        return "position is not finite"
    if not all(math.isfinite(v) for v in reading.orientation):
        return "orientation is not finite"
    norm = math.sqrt(sum(v * v for v in reading.orientation))
    if abs(norm - 1.0) > UNIT_QUATERNION_TOLERANCE:
        return f"orientation is not a unit quaternion (norm {norm:.3g})"
    if not all(math.isfinite(v) for v in (*reading.linear_velocity, *reading.angular_velocity)):
        return "twist is not finite"
    return None


def status_cause(status: str) -> str:
    """A status without its numbers, e.g. "stopped: obstacle" for "stopped: obstacle 0.20 m":
    what a log says once, however the numbers change."""
    return re.split(r"[\d(]", status, maxsplit=1)[0].strip()


@dataclass
class _Goal:
    x: float
    y: float
    frame_id: str


@dataclass
class _Pose:
    x: float
    y: float
    yaw: float
    frame_id: str
    received: float


def limit_speed_change(previous: float, target: float, max_step: float) -> float:
    """Speeding up is limited to max_step per period; slowing down and stopping are immediate."""
    if previous * target < 0.0:
        previous = 0.0  # reversing: stop now, then speed up the other way
    if abs(target) <= abs(previous):
        return target
    return previous + max(-max_step, min(max_step, target - previous))


def reachable_speeds(previous: float, max_step: float, limit: float) -> tuple[float, float]:
    """The speeds `limit_speed_change` can reach from `previous` in one period, within +-limit."""
    low, high = (-max_step, previous + max_step) if previous >= 0.0 else (previous - max_step, max_step)
    return max(low, -limit), min(high, limit)


class NavigationController:
    """Drives toward one goal at a time with a policy; zero velocity whenever in doubt."""

    def __init__(self, policy: Policy, config: ControllerConfig, monitor: CollisionMonitor | None = None) -> None:
        self.policy = policy
        self.config = config
        self.monitor = monitor
        self._goal: _Goal | None = None
        self._goal_rejection: str | None = None  # why the goal was dropped (odometry changed frame)
        self._reached = False
        self._pose: _Pose | None = None
        self._odom_error: str | None = None
        self._image: np.ndarray | None = None
        self._image_error: str | None = None
        self._image_received: float | None = None
        self._linear = 0.0
        self._angular = 0.0

    # Inputs --------------------------------------------------------------------------------------
    def set_goal(self, x: float, y: float, frame_id: str) -> str | None:
        """Take a new goal (resets the policy's state); return why it was refused, or None.
        A refused goal changes nothing: the robot keeps driving to the goal it had."""
        if not (math.isfinite(x) and math.isfinite(y)):
            return "goal position is not finite"
        if not frame_id:
            return "goal has no frame_id"
        if self._pose is not None and frame_id != self._pose.frame_id:
            return f"goal frame {frame_id!r} is not the odometry frame {self._pose.frame_id!r}"
        self._goal = _Goal(float(x), float(y), frame_id)
        self._goal_rejection = None
        self._reached = False
        self.policy.reset()
        return None

    def clear_goal(self) -> None:
        """Forget the goal (a cancelled navigation): the robot stops and waits for the next."""
        self._goal, self._goal_rejection, self._reached = None, None, False

    @property
    def odometry_frame(self) -> str | None:
        """The frame of the newest valid odometry (goals are driven to in it), or None."""
        return None if self._pose is None else self._pose.frame_id

    @property
    def goal_distance(self) -> float | None:
        """Straight-line distance from the newest pose to the goal, m; None without both."""
        if self._goal is None or self._pose is None:
            return None
        return math.hypot(self._goal.x - self._pose.x, self._goal.y - self._pose.y)

    def set_odometry(self, reading: OdometryReading, received: float) -> str | None:
        """Take odometry, checked whole before anything is derived from it; return why it is
        invalid (the robot then stops until a valid one arrives), or None."""
        self._odom_error = odometry_problem(reading)
        if self._odom_error is not None:
            self._pose = None
        else:
            x, y, _ = reading.position
            norm = math.sqrt(sum(v * v for v in reading.orientation))   # within tolerance of 1
            yaw = yaw_from_quaternion(*(v / norm for v in reading.orientation))
            self._pose = _Pose(float(x), float(y), yaw, reading.frame_id, received)
        return self._odom_error

    def set_image(self, rgb: np.ndarray, received: float) -> None:
        self._image, self._image_error, self._image_received = rgb, None, received

    def set_image_error(self, reason: str, received: float) -> None:
        """The newest image was unusable: stop until a good one arrives."""
        self._image, self._image_error, self._image_received = None, reason, received

    @property
    def pose(self) -> tuple[float, float, float] | None:
        """The newest valid odometry pose (x, y, yaw), or None."""
        return None if self._pose is None else (self._pose.x, self._pose.y, self._pose.yaw)

    # Control -------------------------------------------------------------------------------------
    def tick(self, now: float) -> Command:
        """The command for this control period."""
        status = self._goal_and_pose_status(now)
        if status is not None:
            return self.stop(status)
        assert self._goal is not None and self._pose is not None
        goal_vec = goal_in_robot_frame(self._pose.x, self._pose.y, self._pose.yaw, self._goal.x, self._goal.y)
        if goal_vec[0] <= self.config.goal_tolerance:
            self._reached = True
            return self.stop(REACHED)
        status = self._image_status(now)
        if status is not None:
            return self.stop(status)
        assert self._image is not None
        problem = self.monitor.input_problem(now) if self.monitor is not None else None
        if problem is not None:
            return self.stop(f"{STOPPED}: {problem}")
        cfg = self.config
        executed = (np.array([self._linear / cfg.action_linear_scale, self._angular / cfg.action_angular_scale],
                             dtype=np.float32) if cfg.command_feedback else None)
        try:
            action = self.policy.step(self._image, goal_vec, prev_action=executed)
        except ValueError as err:
            return self.stop(f"{STOPPED}: policy error: {err}")
        linear = float(np.clip(action[0] * cfg.action_linear_scale, -cfg.max_linear_speed, cfg.max_linear_speed))
        angular = float(np.clip(action[1] * cfg.action_angular_scale, -cfg.max_angular_speed, cfg.max_angular_speed))
        linear = limit_speed_change(self._linear, linear, cfg.max_linear_accel * cfg.control_period)
        angular = limit_speed_change(self._angular, angular, cfg.max_angular_accel * cfg.control_period)
        status = NAVIGATING
        if self.monitor is not None:
            turn_rates = reachable_speeds(self._angular, cfg.max_angular_accel * cfg.control_period,
                                          cfg.max_angular_speed)
            decision = self.monitor.limit(linear, angular, self.pose, turn_rates, (self._linear, self._angular))
            linear, angular, status = decision.linear, decision.angular, decision.status or NAVIGATING
        self._linear, self._angular = linear, angular
        return Command(linear, angular, status)

    def _goal_and_pose_status(self, now: float) -> str | None:
        """Why the robot must not drive toward the goal now (the status line), or None."""
        cfg = self.config
        if self._goal_rejection is not None:
            return f"{STOPPED}: goal rejected: {self._goal_rejection}"
        if self._goal is None:
            return IDLE
        if self._reached:
            return REACHED
        if self._odom_error is not None:
            return f"{STOPPED}: invalid odometry: {self._odom_error}"
        if self._pose is None:
            return f"{STOPPED}: no odometry"
        if now - self._pose.received > cfg.odom_timeout:
            return f"{STOPPED}: odometry older than {cfg.odom_timeout:g} s"
        if self._goal.frame_id != self._pose.frame_id:
            # The goal came before any odometry, or odometry changed frame since.
            reason = f"goal frame {self._goal.frame_id!r} is not the odometry frame {self._pose.frame_id!r}"
            self._goal, self._goal_rejection = None, reason
            return f"{STOPPED}: goal rejected: {reason}"
        return None

    def _image_status(self, now: float) -> str | None:
        """Why the policy cannot see now (the status line), or None."""
        if self._image_error is not None:
            return f"{STOPPED}: invalid image: {self._image_error}"
        if self._image is None:
            return f"{STOPPED}: no image"
        if self._image_received is not None and now - self._image_received > self.config.image_timeout:
            return f"{STOPPED}: image older than {self.config.image_timeout:g} s"
        return None

    def stop(self, status: str) -> Command:
        """Zero velocity now (speeding up again starts from zero), with this status."""
        self._linear = self._angular = 0.0
        return Command(0.0, 0.0, status)
