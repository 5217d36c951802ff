"""The simulator bridge over real DDS: its messages, its use of cmd_vel, and the whole sim job.

The bridge runs in its own process (`python -m recore_nav.sim.bridge_node`); this process is a
plain rclpy peer that subscribes and commands, as a navigation stack would.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String

from conftest import REPO_ROOT
from onnx_policies import write_goal_seeking_bundle

PARAMS = str(REPO_ROOT / "config" / "sim.yaml")


class Listener:
    """Subscribes to everything the bridge publishes and keeps the newest of each."""

    def __init__(self, context) -> None:
        self.node = Node("bridge_listener", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.latest: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        for topic, kind, qos in [("camera/image_raw", Image, qos_profile_sensor_data),
                                 ("camera/depth", Image, qos_profile_sensor_data),
                                 ("odom", Odometry, 10), ("goal_pose", PoseStamped, reliable),
                                 ("episode_result", String, 10)]:
            self.node.create_subscription(kind, topic, lambda msg, t=topic: self._store(t, msg), qos)
        self.cmd_pub = self.node.create_publisher(Twist, "cmd_vel", reliable)

    def _store(self, topic: str, msg) -> None:
        self.latest[topic] = msg
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def spin_until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
            if condition():
                return True
        return False

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def test_bridge_publishes_well_formed_messages_and_obeys_cmd_vel(ros_context, start_node):
    bridge = start_node("recore_nav.sim.bridge_node", "--params-file", PARAMS, "-p", "seed:=7")
    listener = Listener(ros_context)
    try:
        topics = ["camera/image_raw", "camera/depth", "odom", "goal_pose"]
        assert listener.spin_until(lambda: all(t in listener.latest for t in topics), 30.0), \
            f"bridge published only {sorted(listener.latest)}:\n{bridge.output()}"

        image = listener.latest["camera/image_raw"]
        assert (image.height, image.width, image.encoding, image.step) == (64, 64, "rgb8", 64 * 3)
        assert len(image.data) == 64 * 64 * 3 and image.header.frame_id == "camera_link"

        depth_msg = listener.latest["camera/depth"]
        assert (depth_msg.encoding, depth_msg.step) == ("32FC1", 64 * 4)
        depth = np.frombuffer(bytes(depth_msg.data), dtype=np.float32)
        assert depth.size == 64 * 64 and np.all(np.isfinite(depth)) and depth.min() > 0.0

        goal = listener.latest["goal_pose"]
        assert goal.header.frame_id == "odom"
        odom = listener.latest["odom"]
        assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
        q = odom.pose.pose.orientation
        assert math.isclose(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2, 1.0, rel_tol=1e-6)

        # Turning in place at 1 rad/s for ~3 s changes the heading by well over half a radian.
        from recore_nav.geometry import wrap_angle, yaw_from_quaternion
        start_yaw = yaw_from_quaternion(q.x, q.y, q.z, q.w)
        command = Twist()
        command.angular.z = 1.0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            listener.cmd_pub.publish(command)
            listener.spin_until(lambda: False, 0.1)
        q_now = listener.latest["odom"].pose.pose.orientation
        turned = abs(wrap_angle(yaw_from_quaternion(q_now.x, q_now.y, q_now.z, q_now.w) - start_yaw))
        assert turned > 0.5, f"cmd_vel turned the simulated robot by only {turned:.2f} rad"
        assert listener.latest["odom"].twist.twist.angular.z == pytest.approx(1.0, abs=0.2)
        assert bridge.alive(), bridge.output()
    finally:
        listener.close()


def test_simulated_robot_runs_episodes_through_the_navigation_node(ros_env, tmp_path: Path):
    """The main job end to end: launcher -> bridge + navigation node over DDS -> episode results."""
    bundle = write_goal_seeking_bundle(tmp_path / "bundle")
    result = subprocess.run(
        [sys.executable, "-m", "recore_nav.launcher", "--episodes", "2", "--max-steps", "40",
         "--model-dir", str(bundle), "--params-file", PARAMS],
        env=ros_env.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "episode 0:" in output and "episode 1:" in output, output
    summary = json.loads(output.split("all episodes done: ", 1)[1].splitlines()[0])
    assert summary["episodes"] == 2
    assert "status: navigating" in output, output
