"""The ROS 2 interface every recore_nav node shares: topic names, QoS profiles, DDS transport.

Topic names are relative (so a namespace applies) and fixed; a robot with other names remaps
them (`--ros-args -r cmd_vel:=/base/cmd_vel`, or `remappings=` in a launch file).
"""

from __future__ import annotations

import os
from pathlib import Path

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from recore_nav.resources import share_path

IMAGE_TOPIC = "camera/image_raw"
COMPRESSED_IMAGE_TOPIC = "camera/image_raw/compressed"   # image_transport's compressed transport
CAMERA_INFO_TOPIC = "camera/camera_info"
DEPTH_TOPIC = "camera/depth"
DEPTH_CAMERA_INFO_TOPIC = "camera/depth/camera_info"   # the depth image's intrinsics
SCAN_TOPIC = "scan"
ODOM_TOPIC = "odom"
GOAL_TOPIC = "goal_pose"
CMD_VEL_TOPIC = "cmd_vel"
STATUS_TOPIC = "navigation_status"
EPISODE_RESULT_TOPIC = "episode_result"   # the simulator bridge's finished episodes (JSON)
CLOCK_TOPIC = "/clock"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"

# Camera: best effort (a late frame is worthless, never retransmit it), and depth 1: only the
# newest frame is kept, so a fast camera cannot build a queue in front of a 10 Hz controller.
IMAGE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1,
    reliability=qos_profile_sensor_data.reliability, durability=qos_profile_sensor_data.durability)
# The collision monitor's depth images and scans: like the camera, only the newest counts (an old
# one is worse than none: the monitor stops the robot when its input is stale).
DEPTH_QOS = IMAGE_QOS
# Camera intrinsics arrive beside every frame (as camera drivers publish them); the newest is kept.
CAMERA_INFO_QOS = IMAGE_QOS
SCAN_QOS = IMAGE_QOS
# Odometry: best effort depth 1 too; a best-effort subscription matches both reliable and
# best-effort publishers, and only the newest pose matters.
ODOM_QOS = IMAGE_QOS
# Goals are rare and must not be lost: reliable. Volatile so an old goal is never replayed.
GOAL_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
# Velocity commands: reliable (matches every subscriber, and a stop command is not dropped on a
# lossy link) with depth 1 (a command that could not go out is replaced by the next, never queued).
CMD_VEL_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
# Odometry as a robot base publishes it: reliable, which matches reliable subscribers (RViz,
# recorders) as well as the navigation node's best-effort one.
ODOM_PUBLISHER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
# Episode results: every one counts, and they are few.
EPISODE_RESULT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
# Status is published on change only, so it is latched: a late subscriber gets the current one.
STATUS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                        reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)

# Transforms as tf2_ros publishes and subscribes to them: reliable, /tf_static latched.
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                           reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Simulated time, as Gazebo's bridge publishes it (rclpy's time source subscribes best effort).
CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                       reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)

# Fast DDS 2.x (ROS 2 Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE, Fast DDS 3.x (Kilted) reads
# FASTDDS_DEFAULT_PROFILES_FILE; the other name is silently ignored, so both are set.
FASTDDS_PROFILE_ENVS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def fastdds_profile_path() -> Path:
    """The shipped Fast DDS profile: a 16 MB shared-memory segment plus UDPv4."""
    return share_path("config", "fastdds_large_shm.xml")


def fastdds_profile_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The variables that point Fast DDS at the shipped profile, unless `env` names one already."""
    env = os.environ if env is None else env
    if env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return {}
    chosen = next((env[name] for name in FASTDDS_PROFILE_ENVS if env.get(name)), None)
    if chosen is None:
        path = fastdds_profile_path()
        if not path.is_file():
            return {}
        chosen = str(path)
    return {name: chosen for name in FASTDDS_PROFILE_ENVS}


def use_large_shm_transport() -> str | None:
    """Point Fast DDS at the shipped profile unless the user chose one; call before rclpy.init.

    With Fast DDS's default 512 KB shared-memory segment, best-effort camera frames larger than a
    few hundred KB mostly vanish (measured: 640x480 rgb8 at 100 Hz, 38 of 278 frames arrived;
    with this profile 156, the rest lost to a busy Python subscriber). Returns the profile in use.
    """
    variables = fastdds_profile_environment()
    os.environ.update(variables)
    return variables.get(FASTDDS_PROFILE_ENVS[0])
