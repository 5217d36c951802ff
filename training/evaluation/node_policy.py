"""A policy bundle driven through the navigation node's own decisions, for evaluation episodes.

`NodePolicy` runs, step by step, what the navigation node runs between its messages and
`cmd_vel`: `NavigationController` (speed and acceleration limits, the executed command fed back
as the policy's previous action) and, where enabled, the `CollisionMonitor` on the simulator's
depth image (with the camera's field of view from `info`, as the node has it from CameraInfo), all
configured from the node's parameter file exactly as the node reads it
(`recore_nav.node_parameters`). So an evaluation measures the node's code, not a copy of it,
without the timing noise of DDS. The simulator's pose and goal stand in for odometry and the goal
message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recore_nav import task
from recore_nav.collision_monitor import CameraIntrinsics, CollisionMonitor, depth_obstacles
from recore_nav.navigation_controller import NavigationController, OdometryReading, status_cause
from recore_nav.node_parameters import (PARAMETERS, check_parameters, controller_config, depth_camera, monitor_config,
                                        read_parameters_file)
from training.environments.collector import PerEnvPolicies

FRAME = "odom"


def node_parameters(path: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The navigation node's parameters from `path`, with NAME=VALUE overrides (values read as
    YAML), checked as the node checks them."""
    import yaml

    parameters = read_parameters_file(path)
    for override in overrides:
        name, equals, value = override.partition("=")
        if name not in PARAMETERS or not equals:
            raise ValueError(f"--node-param {override!r}: expected NAME=VALUE with a navigation node parameter name")
        parameters[name] = yaml.safe_load(value)
    check_parameters(parameters)
    return parameters


class NodePolicy:
    """One environment's policy: a bundle behind the navigation node's controller and monitor.

    `statuses` counts the control steps by status cause (`navigating`, `slowed: obstacle`,
    `stopped: obstacle`, ...), over every episode it ran.
    """

    def __init__(self, bundle_dir: Path, parameters: dict[str, Any], providers: str = "cpu") -> None:
        from recore_nav.policy import PolicyRuntime

        check_parameters(parameters)
        self.runtime = PolicyRuntime(bundle_dir, providers=providers, cpu_threads=1)
        self.config = controller_config(parameters, self.runtime.spec)
        self.monitor_config = monitor_config(parameters) if parameters["collision_monitor"] else None
        self.camera = depth_camera(parameters)
        self.use_camera_info = bool(parameters["depth_camera_info"])
        self.statuses: Counter[str] = Counter()
        self.reset()

    def reset(self) -> None:
        """A new episode: a fresh controller (and monitor); the goal is taken at the first step."""
        monitor = CollisionMonitor(self.monitor_config) if self.monitor_config is not None else None
        self.controller = NavigationController(self.runtime, self.config, monitor)
        self._steps = 0

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        now = self._steps * self.config.control_period
        controller = self.controller
        if self._steps == 0:
            goal_x, goal_y = info["goal_position"]
            controller.set_goal(float(goal_x), float(goal_y), FRAME)
        self._steps += 1
        x, y, yaw = (float(v) for v in info["robot_pose"])
        controller.set_odometry(OdometryReading.planar(x, y, yaw, FRAME), now)
        controller.set_image(obs["rgb"], now)
        if controller.monitor is not None:
            depth = obs["depth"]
            # The environment's camera stands in for the CameraInfo the node would receive.
            intrinsics = (CameraIntrinsics.from_vertical_fov(float(info["camera_vertical_fov"]), depth.shape[1],
                                                             depth.shape[0]) if self.use_camera_info else None)
            obstacles = depth_obstacles(depth, self.camera, controller.monitor.config, intrinsics)
            controller.monitor.set_obstacles(obstacles, now, controller.pose)
        command = controller.tick(now)
        self.statuses[status_cause(command.status)] += 1
        # The environment contract: an action of 1 is the task's speed limit.
        return np.array([command.linear / task.MAX_LINEAR_SPEED, command.angular / task.MAX_ANGULAR_SPEED],
                        dtype=np.float32)


class NodePolicies:
    """`make_policy` for `evaluate`: a `NodePolicy` per environment, kept for their status counts."""

    def __init__(self, bundle_dir: Path, parameters: dict[str, Any], providers: str = "cpu") -> None:
        self.bundle_dir, self.parameters, self.providers = Path(bundle_dir), parameters, providers
        self.policies: list[NodePolicy] = []

    def __call__(self, num_envs: int) -> PerEnvPolicies:
        self.policies = [NodePolicy(self.bundle_dir, self.parameters, self.providers) for _ in range(num_envs)]
        return PerEnvPolicies(self.policies)

    def status_steps(self) -> dict[str, int]:
        """Control steps by status cause, over every environment, most frequent first."""
        total: Counter[str] = Counter()
        for policy in self.policies:
            total.update(policy.statuses)
        return dict(total.most_common())
