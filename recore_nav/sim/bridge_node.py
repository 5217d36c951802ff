"""ROS 2 bridge to the embedded simulator: the robot's sensors out, its velocity commands in.

Steps an environment made by `recore_nav.sim.factory` (the embedded MuJoCo `PointNavEnv` by
default) and speaks the topics of `recore_nav.ros_interface`, as a real robot does:

  publishes  camera/image_raw   (sensor_msgs/Image rgb8, sensor-data QoS, frame camera_link)
             camera/camera_info (sensor_msgs/CameraInfo, this episode's field of view)
             camera/depth       (sensor_msgs/Image 32FC1 metres, sensor-data QoS)
             camera/depth/camera_info (the same camera's intrinsics, beside the depth image)
             odom               (nav_msgs/Odometry, odom -> base_link)
             /tf, /tf_static    (odom -> base_link; base_link -> camera_link, where tf2_msgs is installed)
             /clock             (rosgraph_msgs/Clock, simulated time: control_dt per step, from 0)
             goal_pose          (geometry_msgs/PoseStamped in odom, once per episode)
             episode_result     (std_msgs/String, one JSON object per finished episode)
  subscribes cmd_vel            (geometry_msgs/Twist)

camera_link is the camera's optical frame (REP 103: z forward, x right, y down), 0.5 m above
base_link, which lies on the floor under the robot's centre. Stamps are simulated time under
`use_sim_time:=true` (then every node follows /clock), wall time otherwise. The node's own timers
run on the wall clock either way: it is the clock's source.

Two ways of keeping time:
- lockstep (default): one simulator step per velocity command, at most `real_time_factor` times
  the control rate. The navigation node publishes once per control period, so each of its commands
  is computed from the newest observation, as in training; without commands the simulator still
  advances (zero velocity) after `command_timeout` of wall time, so sensors and /clock never stop.
- free-running: steps at control rate x real_time_factor with the newest command (zero once it
  is older than `command_timeout`).

Parameters are read once at start-up, hence read-only. After `episodes` episodes the node prints
the summary and exits (code 0), and a launch file ends with it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from recore_nav import node_process
from recore_nav.episodes import EpisodeRecord, summarize, summary_line
from recore_nav.geometry import quaternion_from_yaw
from recore_nav.ros_interface import (
    CAMERA_INFO_QOS,
    CAMERA_INFO_TOPIC,
    CLOCK_QOS,
    CLOCK_TOPIC,
    CMD_VEL_QOS,
    CMD_VEL_TOPIC,
    DEPTH_CAMERA_INFO_TOPIC,
    DEPTH_TOPIC,
    EPISODE_RESULT_QOS,
    EPISODE_RESULT_TOPIC,
    GOAL_QOS,
    GOAL_TOPIC,
    IMAGE_QOS,
    IMAGE_TOPIC,
    ODOM_PUBLISHER_QOS,
    ODOM_TOPIC,
    TF_QOS,
    TF_STATIC_QOS,
    TF_STATIC_TOPIC,
    TF_TOPIC,
)
from recore_nav.sim.factory import make_env
from recore_nav.task import MAX_EPISODE_STEPS, SPLITS

# /clock goes out this long (s, wall) after the observation it stamps: DDS keeps no order between
# topics, and a node on simulated time that woke before its camera frame arrived would act on the
# previous one.
CLOCK_DELAY = 0.01

# base_link (x forward, z up) -> an optical frame (z forward, x right, y down): x, y, z, w.
OPTICAL_ROTATION = (-0.5, 0.5, -0.5, 0.5)

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
        self.use_sim_time = bool(self.get_parameter("use_sim_time").value)
        self.sim_steps = 0   # simulated time is sim_steps * control_dt
        self._clock_due: tuple[Time, float] | None = None   # (the next /clock, when to publish it)

        self.image_pub = self.create_publisher(Image, IMAGE_TOPIC, IMAGE_QOS)
        self.camera_info_pub = self.create_publisher(CameraInfo, CAMERA_INFO_TOPIC, CAMERA_INFO_QOS)
        self.depth_pub = self.create_publisher(Image, DEPTH_TOPIC, IMAGE_QOS) if p["publish_depth"] else None
        self.depth_info_pub = (self.create_publisher(CameraInfo, DEPTH_CAMERA_INFO_TOPIC, CAMERA_INFO_QOS)
                               if p["publish_depth"] else None)
        self.odom_pub = self.create_publisher(Odometry, ODOM_TOPIC, ODOM_PUBLISHER_QOS)
        self.goal_pub = self.create_publisher(PoseStamped, GOAL_TOPIC, GOAL_QOS)
        self.result_pub = self.create_publisher(String, EPISODE_RESULT_TOPIC, EPISODE_RESULT_QOS)
        self.clock_pub = self.create_publisher(ClockMsg, CLOCK_TOPIC, CLOCK_QOS)
        self.tf_pub = self.create_publisher(TFMessage, TF_TOPIC, TF_QOS) if TFMessage is not None else None
        if self.tf_pub is None:
            self.get_logger().info("tf2_msgs is not installed: odom->base_link goes out on odom only")
        else:
            self._publish_camera_transform()
        self.create_subscription(Twist, CMD_VEL_TOPIC, self._on_cmd_vel, CMD_VEL_QOS)

        self.episodes: list[EpisodeRecord] = []
        self.episode_index = 0
        self.command = np.zeros(2, dtype=np.float32)
        self.command_time = -math.inf
        self.commands_received = 0
        self.commands_used = 0
        self.last_step_time = -math.inf
        self.goal_sent = False
        self.finished = False
        self._reset_episode()
        # The wall clock drives stepping, also under use_sim_time: this node is the clock's source.
        # A few checks per step period, so a held-back command waits at most a quarter period.
        self.create_timer(self.step_period / 4, self._on_timer, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f"simulator '{p['environment']}' split={p['split']} image={p['image_size']}px "
            f"control {1.0 / self.env.control_dt:.0f} Hz x{p['real_time_factor']:g} "
            f"{'lockstep' if self.lockstep else 'free-running'}, "
            f"{'simulated' if self.use_sim_time else 'wall'} time stamps")

    def _declare_parameters(self) -> dict:
        def declare(name: str, default, description: str):
            # Read once at start-up: a change at run time would silently do nothing, so none is allowed.
            descriptor = ParameterDescriptor(description=description, read_only=True)
            return self.declare_parameter(name, default, descriptor).value

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
            "base_frame": declare("base_frame", "base_link", "Robot body frame, on the floor."),
            "camera_frame": declare("camera_frame", "camera_link", "Camera optical frame id on images."),
        }

    def _stamp(self) -> Time:
        """Simulated time under use_sim_time, else the wall clock."""
        if self.use_sim_time:
            nanoseconds = round(self.sim_steps * self.env.control_dt * 1e9)
            return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)
        return self.get_clock().now().to_msg()

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
        goal.header.stamp = self._stamp()
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
        self.commands_received += 1
        self._step_when_due()

    def _on_timer(self) -> None:
        if self.finished:
            return
        self._send_goal_when_matched()
        self._publish_clock_when_due()
        self._step_when_due()

    def _step_when_due(self) -> None:
        """Lockstep: each new command once, no faster than the step period; free-running: every period."""
        now = time.monotonic()
        since = now - self.last_step_time
        if self.finished or since < 0.9 * self.step_period:
            return
        if self.lockstep and self.goal_sent:
            if self.commands_received > self.commands_used:
                self._step(self.command)
            elif since >= self.command_timeout:
                self._step(np.zeros(2, dtype=np.float32))   # the navigation node is silent
            return
        if since >= self.step_period:
            fresh = now - self.command_time <= self.command_timeout
            self._step(self.command if fresh else np.zeros(2, dtype=np.float32))

    def _step(self, action: np.ndarray) -> None:
        self.last_step_time = time.monotonic()
        self.commands_used = self.commands_received
        self.obs, reward, terminated, truncated, self.info = self.env.step(action)
        self.sim_steps += 1
        self.episode_return += float(reward)
        self._publish_observation()
        if terminated or truncated:
            self._finish_episode(self.info)

    # ---- messages -------------------------------------------------------------------------
    def _publish_observation(self) -> None:
        """Sensors now, /clock CLOCK_DELAY later: a node on simulated time wakes with them there."""
        stamp = self._stamp()
        rgb = self.obs["rgb"]
        self.image_pub.publish(self._image_msg(stamp, rgb, "rgb8", 3))
        camera_info = self._camera_info(stamp, rgb.shape[0], rgb.shape[1])
        self.camera_info_pub.publish(camera_info)
        if self.depth_pub is not None:   # one camera: the depth image has the colour image's intrinsics
            depth = np.ascontiguousarray(self.obs["depth"][..., 0], dtype=np.float32)
            self.depth_info_pub.publish(camera_info)
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
        self._clock_due = (stamp, time.monotonic() + CLOCK_DELAY)

    def _publish_clock_when_due(self) -> None:
        if self._clock_due is not None and time.monotonic() >= self._clock_due[1]:
            self.clock_pub.publish(ClockMsg(clock=self._clock_due[0]))
            self._clock_due = None

    def _publish_camera_transform(self) -> None:
        """base_link -> camera_link, latched on /tf_static."""
        self.tf_static_pub = self.create_publisher(TFMessage, TF_STATIC_TOPIC, TF_STATIC_QOS)
        tf = TransformStamped()
        tf.header.stamp = self._stamp()
        tf.header.frame_id, tf.child_frame_id = self.base_frame, self.camera_frame
        tf.transform.translation.z = float(self.env.robot.camera_height)
        r = tf.transform.rotation
        r.x, r.y, r.z, r.w = OPTICAL_ROTATION
        self.tf_static_pub.publish(TFMessage(transforms=[tf]))

    def _camera_info(self, stamp, height: int, width: int) -> CameraInfo:
        """A pinhole camera without distortion, square pixels, this episode's field of view."""
        focal = (height / 2.0) / math.tan(self.env.camera_vertical_fov() / 2.0)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        info = CameraInfo()
        info.header.stamp, info.header.frame_id = stamp, self.camera_frame
        info.height, info.width = height, width
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        info.k = [focal, 0.0, cx, 0.0, focal, cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [focal, 0.0, cx, 0.0, 0.0, focal, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

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
    stop, _ = node_process.init(args)
    node = None
    try:
        node = SimBridgeNode()
        node_process.spin(node, stop, done=lambda: node.finished)
    finally:
        if node is not None:
            node.env.close()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
