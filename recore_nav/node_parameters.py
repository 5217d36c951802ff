"""The navigation node's parameters: names, defaults, meanings, and the configuration they make.

Free of rclpy, so that evaluation runs the node's own decisions (`NavigationController`, the
`CollisionMonitor`) with a parameter file read exactly as the node reads it:

    p = read_parameters_file("config/robot.yaml")         # defaults, then the file's values
    check_parameters(p)
    controller = controller_config(p, bundle_spec); monitor = monitor_config(p)

Angles are in radians (REP 103); distances in m, times in s.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from recore_nav import task
from recore_nav.bundle import BundleSpec
from recore_nav.collision_monitor import DepthCamera, MonitorConfig, ScannerPose, footprint_from_text
from recore_nav.navigation_controller import ControllerConfig
from recore_nav.policy import PROVIDER_CHOICES

NODE_NAME = "navigation_node"
SAFETY_INPUTS = ("depth", "scan")
IMAGE_TRANSPORTS = ("raw", "compressed")

_CONTROL, _MONITOR, _CAMERA, _SCANNER = ControllerConfig, MonitorConfig, DepthCamera(), ScannerPose()

# name -> (default, description). Every parameter the node reads, declared at start-up.
PARAMETERS: dict[str, tuple[object, str]] = {
    "model_dir": ("", "policy bundle directory with policy.onnx + policy.json "
                      "(empty: models/recore_pointnav in the package's share directory)"),
    "providers": ("auto", f"onnxruntime providers: {', '.join(PROVIDER_CHOICES)} "
                          "(auto: CUDA if it really loads, else CPU)"),
    "cpu_threads": (1, "onnxruntime intra-op threads on the CPU provider"),
    "image_transport": ("raw", "raw: sensor_msgs/Image on camera/image_raw; compressed: sensor_msgs/CompressedImage "
                               "(jpeg, png) on camera/image_raw/compressed"),
    "goal_transform_timeout": (0.5, "how long a goal in another frame waits for its transform into the odometry "
                                    "frame before it is rejected, s"),
    "control_rate_hz": (task.CONTROL_RATE_HZ,
                        "rate of velocity commands and policy steps, Hz (the policy's training rate)"),
    "goal_tolerance": (task.SUCCESS_RADIUS, "the goal is reached within this distance, m"),
    "image_timeout": (_CONTROL.image_timeout, "stop when the newest camera image is older than this, s"),
    "odom_timeout": (_CONTROL.odom_timeout, "stop when the newest odometry is older than this, s"),
    "max_linear_speed": (0.0, "linear speed limit, m/s (<= 0: the bundle's max_linear_speed)"),
    "max_angular_speed": (0.0, "angular speed limit, rad/s (<= 0: the bundle's max_angular_speed)"),
    "max_linear_accel": (_CONTROL.max_linear_accel,
                         "linear acceleration limit when speeding up, m/s^2 (slowing down is immediate)"),
    "max_angular_accel": (_CONTROL.max_angular_accel,
                          "angular acceleration limit when speeding up, rad/s^2 (slowing down is immediate)"),
    "command_feedback": (_CONTROL.command_feedback, "tell the policy the command actually sent (after limits and the "
                                                    "collision monitor) as its previous action"),
    # The collision monitor (recore_nav/collision_monitor.py).
    "collision_monitor": (True, "check every command against the safety input; without one the robot does not move"),
    "safety_input": ("depth", "depth: camera/depth (sensor_msgs/Image 32FC1 m or 16UC1 mm); "
                              "scan: scan (sensor_msgs/LaserScan)"),
    "safety_timeout": (_MONITOR.input_timeout, "stop when the newest safety input is older than this, s"),
    "footprint_radius": (_MONITOR.footprint_radius,
                         "the robot as a circle about base_link, m (when footprint is empty)"),
    "footprint": ("", "the robot as a polygon in base_link, Nav2's form: [[x, y], [x, y], ...], m"),
    "stop_distance": (_MONITOR.stop_distance,
                      "stop linear motion when the footprint would touch an obstacle within this much travel, m"),
    "slowdown_distance": (_MONITOR.slowdown_distance, "slow linear motion down within this much travel, m"),
    "slowdown_ratio": (_MONITOR.slowdown_ratio, "linear speed factor in the slow-down zone"),
    "steer_limit": (_MONITOR.steer_limit, "rad/s; > 0: where the command would be stopped, drive on the nearest "
                                          "turn rate up to this that is clear instead"),
    "turn_away": (_MONITOR.turn_away,
                  "rad/s; > 0: stopped by an obstacle, turn in place away from it at least this fast"),
    "obstacle_memory": (_MONITOR.obstacle_memory, "s an obstacle out of the safety input's view is remembered "
                                                  "by odometry (a forward camera's blind sides); 0: not at all"),
    "command_latency": (_MONITOR.command_latency,
                        "s from cmd_vel to the base acting on it: the monitor checks each command's path from "
                        "where the previous one leads"),
    "min_obstacle_height": (_MONITOR.min_obstacle_height, "depth points lower than this are floor, m"),
    "max_obstacle_height": (_MONITOR.max_obstacle_height, "depth points higher than this pass above the robot, m"),
    "camera_x": (_CAMERA.x, "depth camera position in base_link, m"),
    "camera_y": (_CAMERA.y, "depth camera position in base_link, m"),
    "camera_z": (_CAMERA.z, "depth camera height above the floor, m"),
    "camera_yaw": (_CAMERA.yaw, "depth camera heading in base_link, rad"),
    "camera_pitch": (_CAMERA.pitch, "depth camera tilt, rad, > 0 looks down"),
    "depth_camera_info": (True, "take the depth camera's intrinsics from camera/depth/camera_info "
                                "(sensor_msgs/CameraInfo) and ignore depth until one arrives; false: "
                                "camera_vertical_fov, square pixels, principal point centred"),
    "camera_vertical_fov": (_CAMERA.vertical_fov, "depth camera vertical field of view, rad (square pixels; "
                                                  "used with depth_camera_info false)"),
    "scanner_x": (_SCANNER.x, "laser scanner position in base_link, m"),
    "scanner_y": (_SCANNER.y, "laser scanner position in base_link, m"),
    "scanner_yaw": (_SCANNER.yaw, "laser scanner heading in base_link, rad"),
}

_POSITIVE = ("goal_transform_timeout", "control_rate_hz", "goal_tolerance", "image_timeout", "odom_timeout", "max_linear_accel",
             "max_angular_accel", "safety_timeout", "footprint_radius", "camera_vertical_fov")


def read_parameters_file(path: str | Path, node_name: str = NODE_NAME) -> dict[str, Any]:
    """The node's parameters as a ROS 2 parameter file sets them: the defaults, then the file's
    `<node_name>` (or `/**`, `/**/<node_name>`) section. Unknown names are an error, as a typo would otherwise pass."""
    document = yaml.safe_load(Path(path).read_text()) or {}
    values = {name: default for name, (default, _) in PARAMETERS.items()}
    for section in ("/**", node_name, f"/{node_name}", f"/**/{node_name}"):
        values.update((document.get(section) or {}).get("ros__parameters", {}))
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"{path}: unknown navigation node parameters {unknown}")
    return values


def check_parameters(p: dict[str, Any]) -> None:
    """Raise ValueError with a one-line reason unless the parameters make a node that can run."""
    for name in _POSITIVE:
        if not (isinstance(p[name], (int, float)) and math.isfinite(p[name]) and p[name] > 0):
            raise ValueError(f"parameter {name} must be a positive number, got {p[name]!r}")
    if p["safety_input"] not in SAFETY_INPUTS:
        raise ValueError(f"parameter safety_input must be one of {SAFETY_INPUTS}, got {p['safety_input']!r}")
    if p["image_transport"] not in IMAGE_TRANSPORTS:
        raise ValueError(f"parameter image_transport must be one of {IMAGE_TRANSPORTS}, got {p['image_transport']!r}")
    monitor_config(p)   # its own checks: zones, ratio, footprint


def controller_config(p: dict[str, Any], spec: BundleSpec) -> ControllerConfig:
    """The controller's limits and timeouts; speed limits <= 0 take the bundle's."""
    return ControllerConfig(
        control_period=1.0 / p["control_rate_hz"],
        goal_tolerance=p["goal_tolerance"],
        image_timeout=p["image_timeout"],
        odom_timeout=p["odom_timeout"],
        action_linear_scale=spec.max_linear_speed,
        action_angular_scale=spec.max_angular_speed,
        max_linear_speed=p["max_linear_speed"] if p["max_linear_speed"] > 0 else spec.max_linear_speed,
        max_angular_speed=p["max_angular_speed"] if p["max_angular_speed"] > 0 else spec.max_angular_speed,
        max_linear_accel=p["max_linear_accel"],
        max_angular_accel=p["max_angular_accel"],
        command_feedback=bool(p["command_feedback"]),
    )


def monitor_config(p: dict[str, Any]) -> MonitorConfig:
    return MonitorConfig(
        footprint_radius=p["footprint_radius"], footprint=footprint_from_text(p["footprint"]),
        stop_distance=p["stop_distance"], slowdown_distance=p["slowdown_distance"],
        slowdown_ratio=p["slowdown_ratio"], steer_limit=p["steer_limit"], turn_away=p["turn_away"],
        min_obstacle_height=p["min_obstacle_height"],
        max_obstacle_height=p["max_obstacle_height"], input_timeout=p["safety_timeout"],
        obstacle_memory=p["obstacle_memory"], command_latency=p["command_latency"])


def depth_camera(p: dict[str, Any]) -> DepthCamera:
    return DepthCamera(x=p["camera_x"], y=p["camera_y"], z=p["camera_z"], yaw=p["camera_yaw"],
                       pitch=p["camera_pitch"], vertical_fov=p["camera_vertical_fov"])


def scanner_pose(p: dict[str, Any]) -> ScannerPose:
    return ScannerPose(x=p["scanner_x"], y=p["scanner_y"], yaw=p["scanner_yaw"])
