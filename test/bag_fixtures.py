"""Synthetic rosbag2 recordings of the navigation topics, written with `rosbags` (no ROS needed).

A robot drives a circle at 0.25 m/s and 0.25 rad/s: odometry follows the commanded motion exactly,
so an importer's alignment can be checked against the commands. The tests and
`bench/dataset_speed.py` use them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
SPEED = (0.25, 0.25)   # m/s, rad/s


@dataclass
class SyntheticBag:
    """What to write: rates in Hz, times in seconds from the start; `gaps` silence every topic."""

    duration: float = 6.0
    image_hz: float = 30.0
    odom_hz: float = 20.0
    cmd_hz: float = 10.0
    image_size: tuple[int, int] = (80, 60)      # width, height
    encoding: str = "bgr8"
    depth: bool = False
    goals: list[tuple[float, float, float]] = field(default_factory=lambda: [(0.0, 3.0, 1.0)])   # (t, x, y)
    gaps: list[tuple[float, float]] = field(default_factory=list)
    command_pauses: list[tuple[float, float]] = field(default_factory=list)   # cmd_vel alone falls silent
    namespace: str = ""
    start_ns: int = 1_700_000_000 * 10**9


def pose_at(t: float) -> tuple[float, float, float]:
    """The circle the robot drives: (x, y, yaw) after t seconds."""
    v, w = SPEED
    yaw = w * t
    return v / w * math.sin(yaw), v / w * (1.0 - math.cos(yaw)), yaw


def _header(stamp_ns: int, frame: str):
    t = TYPESTORE.types
    return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9,
                                                                          nanosec=stamp_ns % 10**9), frame_id=frame)


def image_msg(stamp_ns: int, width: int, height: int, encoding: str, value: int):
    """A uniform image whose pixel value tells which message it is."""
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1, "32FC1": 4}[encoding]
    if encoding == "32FC1":
        data = np.full((height, width), 1.0 + value / 100.0, np.float32).view(np.uint8).reshape(-1)
    else:
        data = np.full(height * width * channels, value % 256, np.uint8)
    return TYPESTORE.types["sensor_msgs/msg/Image"](
        header=_header(stamp_ns, "camera_link"), height=height, width=width, encoding=encoding, is_bigendian=0,
        step=width * channels, data=data)


def odom_msg(stamp_ns: int, x: float, y: float, yaw: float):
    t = TYPESTORE.types
    pose = t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
                                       orientation=t["geometry_msgs/msg/Quaternion"](
                                           x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)))
    twist = t["geometry_msgs/msg/Twist"](linear=t["geometry_msgs/msg/Vector3"](x=SPEED[0], y=0.0, z=0.0),
                                         angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=SPEED[1]))
    return t["nav_msgs/msg/Odometry"](
        header=_header(stamp_ns, "odom"), child_frame_id="base_link",
        pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)))


def twist_msg(linear: float, angular: float):
    t = TYPESTORE.types
    return t["geometry_msgs/msg/Twist"](linear=t["geometry_msgs/msg/Vector3"](x=linear, y=0.0, z=0.0),
                                        angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=angular))


def goal_msg(stamp_ns: int, x: float, y: float):
    t = TYPESTORE.types
    pose = t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
                                       orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
    return t["geometry_msgs/msg/PoseStamped"](header=_header(stamp_ns, "odom"), pose=pose)


def write_bag(path: Path, spec: SyntheticBag | None = None, storage: str = "mcap") -> int:
    """Write the recording to the bag directory `path`; returns the number of messages."""
    spec = spec or SyntheticBag()
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    ns = spec.namespace.rstrip("/")
    topics = {"image": ("camera/image_raw", "sensor_msgs/msg/Image"), "odom": ("odom", "nav_msgs/msg/Odometry"),
              "cmd_vel": ("cmd_vel", "geometry_msgs/msg/Twist"), "goal": ("goal_pose", "geometry_msgs/msg/PoseStamped")}
    if spec.depth:
        topics["depth"] = ("camera/depth", "sensor_msgs/msg/Image")
    events: list[tuple[int, str, object]] = []

    def every(hz: float):
        return [k / hz for k in range(int(spec.duration * hz) + 1)]

    silent = lambda t: any(a <= t < b for a, b in spec.gaps)   # noqa: E731
    width, height = spec.image_size
    for k, t in enumerate(every(spec.image_hz)):
        stamp = spec.start_ns + int(round(t * 1e9))
        if not silent(t):
            events.append((stamp, "image", image_msg(stamp, width, height, spec.encoding, k)))
            if spec.depth:
                events.append((stamp, "depth", image_msg(stamp, width, height, "32FC1", k)))
    for t in every(spec.odom_hz):
        if not silent(t):
            stamp = spec.start_ns + int(round(t * 1e9))
            events.append((stamp, "odom", odom_msg(stamp, *pose_at(t))))
    for t in every(spec.cmd_hz):
        if not silent(t) and not any(a <= t < b for a, b in spec.command_pauses):
            events.append((spec.start_ns + int(round(t * 1e9)), "cmd_vel", twist_msg(*SPEED)))
    for t, x, y in spec.goals:
        stamp = spec.start_ns + int(round(t * 1e9))
        events.append((stamp, "goal", goal_msg(stamp, x, y)))
    events.sort(key=lambda e: e[0])
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections = {role: writer.add_connection(f"{ns}/{name}", msgtype, typestore=TYPESTORE)
                       for role, (name, msgtype) in topics.items()}
        for stamp, role, msg in events:
            writer.write(connections[role], stamp, TYPESTORE.serialize_cdr(msg, topics[role][1]))
    return len(events)
