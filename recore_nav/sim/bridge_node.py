"""ROS 2 bridge to the embedded simulator: the robot's sensors out, its velocity commands in.

Steps an environment made by `recore_nav.sim.factory` (the embedded MuJoCo `PointNavEnv` by
default) and speaks the topics of `recore_nav.ros_interface`, as a real robot does:

  publishes  camera/image_raw (sensor_msgs/Image rgb8, sensor-data QoS)
             camera/depth     (sensor_msgs/Image 32FC1 metres, sensor-data QoS)
             odom             (nav_msgs/Odometry, odom -> base_link)
             tf               (odom -> base_link, where tf2_msgs is installed)
             goal_pose        (geometry_msgs/PoseStamped in odom, once per episode)
             episode_result   (std_msgs/String, one JSON object per finished episode)
  subscribes cmd_vel          (geometry_msgs/Twist)

Two ways of keeping time:
- lockstep (default): one simulator step per velocity command, at most `real_time_factor` times
  the control rate. The navigation node publishes at its fixed rate, so each of its commands is
  computed from the newest observation, as in training; without commands the simulator still
  advances (zero velocity) after `command_timeout`, so sensors never go silent.
- free-running: a timer steps at control rate x real_time_factor with the newest command (zero
  once it is older than `command_timeout`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from recore_nav.episodes import EpisodeRecord, summarize, summary_line
from recore_nav.geometry import quaternion_from_yaw
from recore_nav.ros_interface import (CMD_VEL_QOS, CMD_VEL_TOPIC, DEPTH_TOPIC, EPISODE_RESULT_QOS,
                                      EPISODE_RESULT_TOPIC, GOAL_QOS, GOAL_TOPIC, IMAGE_QOS, IMAGE_TOPIC,
                                      ODOM_PUBLISHER_QOS, ODOM_TOPIC, TF_TOPIC, use_large_shm_transport)
from recore_nav.sim.factory import make_env
from recore_nav.task import MAX_EPISODE_STEPS, SPLITS

try:  # The odom -> base_link transform needs tf2_msgs, which has no PyPI wheel.
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = None


def twist_to_action(linear: float, angular: float, max_linear: float, max_angular: float) -> np.ndarray:
    """A velocity command as the environment's normalised action; non-finite values become 0."""
    action = np.array([linear / max_linear, angular / max_angular], dtype=np.float32)
    action[~np.isfinite(action)] = 0.0
    return np.clip(action, -1.0, 1.0)


class SimBridgeNode(Node):
    """Publishes the simulated robot's camera, depth, odometry and goals; applies cmd_vel."""

    def __init__(self) -> None:
        super().__init__("sim_bridge")
        p = self._declare_parameters()
        self.env = make_env(p["environment"], split=p["split"], image_size=p["image_size"], seed=p["seed"],
                            max_steps=p["max_steps"])
        self.odom_frame, self.base_frame, self.camera_frame = p["odom_frame"], p["base_frame"], p["camera_frame"]
        self.lockstep = p["lockstep"]
        self.command_timeout = p["command_timeout"]
        self.max_episodes = p["episodes"]
        self.seed = p["seed"]
        self.step_period = self.env.control_dt / p["real_time_factor"]

        self.image_pub = self.create_publisher(Image, IMAGE_TOPIC, IMAGE_QOS)
        self.depth_pub = self.create_publisher(Image, DEPTH_TOPIC, IMAGE_QOS) if p["publish_depth"] else None
        self.odom_pub = self.create_publisher(Odometry, ODOM_TOPIC, ODOM_PUBLISHER_QOS)
        self.goal_pub = self.create_publisher(PoseStamped, GOAL_TOPIC, GOAL_QOS)
        self.result_pub = self.create_publisher(String, EPISODE_RESULT_TOPIC, EPISODE_RESULT_QOS)
        self.tf_pub = self.create_publisher(TFMessage, TF_TOPIC, 10) if TFMessage is not None else None
        if self.tf_pub is None:
            self.get_logger().info("tf2_msgs is not installed: odom->base_link goes out on odom only")
        self.create_subscription(Twist, CMD_VEL_TOPIC, self._on_cmd_vel, CMD_VEL_QOS)

        self.episodes: list[EpisodeRecord] = []
        self.episode_index = 0
        self.command = np.zeros(2, dtype=np.float32)
        self.command_time = -math.inf
        self.last_step_time = -math.inf
        self.goal_sent = False
        self.finished = False
        self._reset_episode()
        # Lockstep steps from the command callback; this timer is the free-running clock and
        # the lockstep watchdog (it also sends the goal once a subscriber is matched).
        self.create_timer(self.step_period, self._on_timer)
        self.get_logger().info(
            f"simulator '{p['environment']}' split={p['split']} image={p['image_size']}px "
            f"control {1.0 / self.env.control_dt:.0f} Hz x{p['real_time_factor']:g} "
            f"{'lockstep' if self.lockstep else 'free-running'}")

    def _declare_parameters(self) -> dict:
        def declare(name: str, default, description: str):
            return self.declare_parameter(name, default, ParameterDescriptor(description=description)).value

        return {
            "environment": declare("environment", "embedded", "Environment kind (recore_nav.sim.factory)."),
            "split": declare("split", "train", f"Appearance split: {', '.join(SPLITS)}."),
            "seed": declare("seed", 0, "Seed of the first episode; episode i uses seed + i."),
            "image_size": declare("image_size", 64, "Camera image side in pixels."),
            "max_steps": declare("max_steps", MAX_EPISODE_STEPS, "Steps before an episode times out."),
            "episodes": declare("episodes", 0, "Episodes to run before the node exits; 0 runs forever."),
            "real_time_factor": declare("real_time_factor", 1.0, "Simulated seconds per wall-clock second."),
            "lockstep": declare("lockstep", True, "One simulator step per cmd_vel message (see module doc)."),
            "command_timeout": declare("command_timeout", 0.5, "Seconds after which cmd_vel counts as stale."),
            "publish_depth": declare("publish_depth", True, "Publish camera/depth (32FC1, metres)."),
            "odom_frame": declare("odom_frame", "odom", "Frame of odometry and goals."),
            "base_frame": declare("base_frame", "base_link", "Robot body frame."),
            "camera_frame": declare("camera_frame", "camera_link", "Camera optical frame id on images."),
        }

    # ---- episodes -------------------------------------------------------------------------
    def _reset_episode(self) -> None:
        self.obs, self.info = self.env.reset(seed=self.seed + self.episode_index)
        self.episode_return = 0.0
        self.goal_sent = False
        self._publish_observation()

    def _send_goal_when_matched(self) -> None:
        # A goal published before the navigation node's subscription is matched would be lost.
        if self.goal_sent or self.goal_pub.get_subscription_count() == 0:
            return
        goal = PoseStamped()
        goal.header.stamp = self.get_clock().now().to_msg()
        goal.header.frame_id = self.odom_frame
        goal.pose.position.x, goal.pose.position.y = (float(v) for v in self.env.goal_position)
        goal.pose.orientation.w = 1.0
        self.goal_pub.publish(goal)
        self.goal_sent = True
        self.get_logger().info(f"episode {self.episode_index}: goal ({goal.pose.position.x:.2f}, "
                               f"{goal.pose.position.y:.2f}), geodesic {self.info['geodesic_distance']:.2f} m")

    def _finish_episode(self, info: dict) -> None:
        record = EpisodeRecord.from_info(info, self.episode_return, seed=self.seed + self.episode_index)
        self.episodes.append(record)
        result = {"episode": self.episode_index, **asdict(record),
                  "path_length": float(info["path_length"]),
                  "shortest_path_length": float(info["shortest_path_length"])}
        self.result_pub.publish(String(data=json.dumps(result)))
        successes = sum(e.success for e in self.episodes)
        self.get_logger().info(
            f"episode {self.episode_index}: {'SUCCESS' if record.success else 'failure'} "
            f"steps={record.length} spl={record.spl:.2f} collisions={record.collisions} | "
            f"total {successes}/{len(self.episodes)} succeeded")
        self.episode_index += 1
        if self.max_episodes and self.episode_index >= self.max_episodes:
            summary = summarize(self.episodes)
            self.result_pub.publish(String(data=json.dumps({"summary": summary})))
            self.get_logger().info(summary_line(summary))
            self.get_logger().info("all episodes done: " + json.dumps(summary))
            self.finished = True
            return
        self._reset_episode()

    # ---- stepping -------------------------------------------------------------------------
    def _on_cmd_vel(self, msg: Twist) -> None:
        self.command = twist_to_action(msg.linear.x, msg.angular.z,
                                       self.env.max_linear_speed, self.env.max_angular_speed)
        self.command_time = time.monotonic()
        if self.lockstep and self.goal_sent and time.monotonic() - self.last_step_time >= 0.9 * self.step_period:
            self._step(self.command)

    def _on_timer(self) -> None:
        if self.finished:
            return
        self._send_goal_when_matched()
        now = time.monotonic()
        if self.lockstep and self.goal_sent and now - self.last_step_time < self.command_timeout:
            return  # the command callback drives the simulation
        fresh = now - self.command_time <= self.command_timeout
        self._step(self.command if fresh else np.zeros(2, dtype=np.float32))

    def _step(self, action: np.ndarray) -> None:
        if self.finished:
            return
        self.last_step_time = time.monotonic()
        self.obs, reward, terminated, truncated, self.info = self.env.step(action)
        self.episode_return += float(reward)
        self._publish_observation()
        if terminated or truncated:
            self._finish_episode(self.info)

    # ---- messages -------------------------------------------------------------------------
    def _publish_observation(self) -> None:
        stamp = self.get_clock().now().to_msg()
        rgb = self.obs["rgb"]
        self.image_pub.publish(self._image_msg(stamp, rgb, "rgb8", 3))
        if self.depth_pub is not None:
            depth = np.ascontiguousarray(self.obs["depth"][..., 0], dtype=np.float32)
            self.depth_pub.publish(self._image_msg(stamp, depth, "32FC1", 4))

        x, y, yaw = self.env.robot_pose()
        v, w = self.env.robot_velocity()
        odom = Odometry()
        odom.header.stamp = stamp
        odom.header.frame_id = self.odom_frame
        odom.child_frame_id = self.base_frame
        odom.pose.pose.position.x, odom.pose.pose.position.y = float(x), float(y)
        q = quaternion_from_yaw(float(yaw))
        (odom.pose.pose.orientation.x, odom.pose.pose.orientation.y,
         odom.pose.pose.orientation.z, odom.pose.pose.orientation.w) = q
        odom.twist.twist.linear.x, odom.twist.twist.angular.z = float(v), float(w)
        self.odom_pub.publish(odom)

        if self.tf_pub is not None:
            tf = TransformStamped()
            tf.header = odom.header
            tf.child_frame_id = self.base_frame
            tf.transform.translation.x, tf.transform.translation.y = float(x), float(y)
            (tf.transform.rotation.x, tf.transform.rotation.y,
             tf.transform.rotation.z, tf.transform.rotation.w) = q
            self.tf_pub.publish(TFMessage(transforms=[tf]))

    def _image_msg(self, stamp, array: np.ndarray, encoding: str, bytes_per_pixel: int) -> Image:
        """bytes_per_pixel counts all channels: 3 for rgb8, 4 for 32FC1."""
        msg = Image()
        msg.header.stamp = stamp
        msg.header.frame_id = self.camera_frame
        msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
        msg.encoding = encoding
        msg.is_bigendian = 0
        msg.step = msg.width * bytes_per_pixel
        msg.data = np.ascontiguousarray(array).tobytes()
        return msg


def main(args: list[str] | None = None) -> None:
    use_large_shm_transport()  # camera frames over best-effort QoS; before rclpy.init
    rclpy.init(args=args)
    node = None
    try:
        node = SimBridgeNode()
        while rclpy.ok() and not node.finished:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.env.close()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
