"""The navigation node: camera + odometry + goal in, velocity commands out, with a learned policy.

A thin ROS 2 shell around `NavigationController` (the decisions), `CollisionMonitor` (the last
word on every command) and `PolicyRuntime` (the policy). Callbacks only store the newest message;
one timer at the control rate converts the newest image and safety input, asks the controller for
a command and publishes it, so a fast camera never builds a queue and every command comes from
the freshest inputs.

  subscribes  camera/image_raw (sensor_msgs/Image, best effort, depth 1) or, with image_transport
              compressed, camera/image_raw/compressed (sensor_msgs/CompressedImage, jpeg or png),
              odom (nav_msgs/Odometry), goal_pose (geometry_msgs/PoseStamped, any frame TF connects
              to the odometry frame), /tf and /tf_static (where tf2_msgs is installed), and with the
              collision monitor camera/depth (sensor_msgs/Image 32FC1 or 16UC1) with
              camera/depth/camera_info (sensor_msgs/CameraInfo), or scan (LaserScan)
  publishes   cmd_vel (geometry_msgs/Twist, every control period), navigation_status
              (std_msgs/String on change, latched: idle | navigating | reached | stopped: <reason>, and
              where the collision monitor changes a command, slowed: / steered: / stopped: obstacle <m>)
  action      navigate_to_pose (nav2_msgs/action/NavigateToPose, where nav2_msgs is installed)

Goals: the newest goal, from the topic or the action, replaces the one being driven once it is
transformed into the odometry frame (at its stamp; 0 = the latest transform). A goal that cannot
be transformed within goal_transform_timeout is rejected with the reason, and the robot keeps
driving to the goal it had. `use_sim_time:=true` runs every clock of the node on /clock.

Topic names are fixed and relative; remap them for a robot (`-r cmd_vel:=/base/cmd_vel`).
Run: python -m recore_nav.nav_node --ros-args --params-file config/robot.yaml
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import rclpy
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, LaserScan
from std_msgs.msg import String

from recore_nav import navigate_action, node_process
from recore_nav.bundle import BundleError
from recore_nav.collision_monitor import ACTING as MONITOR_ACTING
from recore_nav.collision_monitor import (
    CameraIntrinsics,
    CollisionMonitor,
    SafetyInputError,
    camera_info_intrinsics,
    depth_image_metres,
    depth_obstacles,
    scan_obstacles,
    scan_ranges,
)
from recore_nav.geometry import quaternion_from_yaw
from recore_nav.image_conversion import ImageConversionError, image_msg_to_policy_rgb
from recore_nav.navigation_controller import (
    REACHED,
    STOPPED,
    NavigationController,
    OdometryReading,
    status_cause,
)
from recore_nav.node_parameters import (
    NODE_NAME,
    PARAMETERS,
    check_parameters,
    controller_config,
    depth_camera,
    monitor_config,
    scanner_pose,
)
from recore_nav.policy import PolicyRuntime
from recore_nav.resources import default_model_dir
from recore_nav.ros_interface import (
    CAMERA_INFO_QOS,
    CMD_VEL_QOS,
    CMD_VEL_TOPIC,
    COMPRESSED_IMAGE_TOPIC,
    DEPTH_CAMERA_INFO_TOPIC,
    DEPTH_QOS,
    DEPTH_TOPIC,
    GOAL_QOS,
    GOAL_TOPIC,
    IMAGE_QOS,
    IMAGE_TOPIC,
    ODOM_QOS,
    ODOM_TOPIC,
    SCAN_QOS,
    SCAN_TOPIC,
    STATUS_QOS,
    STATUS_TOPIC,
    TF_QOS,
    TF_STATIC_QOS,
    TF_STATIC_TOPIC,
    TF_TOPIC,
)
from recore_nav.transforms import Transform, TransformBuffer, TransformError

try:  # goals in other frames need /tf; tf2_msgs has no PyPI wheel
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = None

# The same log cause is logged again at most this often (seconds).
WARNING_REPEAT_PERIOD = 10.0


@dataclass
class GoalRequest:
    """A goal as sent, waiting to be transformed into the odometry frame."""

    position: tuple[float, float, float]
    frame_id: str
    stamp: float                                  # header stamp, s (0: the latest transform)
    received: float                               # node clock, s
    action: navigate_action.ActiveGoal | None     # the action goal it came with, or None (topic)


def stamp_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class NavigationNode(Node):
    """Drives to the newest goal with the policy bundle in `model_dir`; zero velocity when in doubt."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        for name, (default, description) in PARAMETERS.items():
            # Read once at start-up, hence read-only: a change at run time would not take effect.
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        check_parameters(p)

        model_dir = p["model_dir"] or str(default_model_dir())
        self.runtime = PolicyRuntime(model_dir, providers=p["providers"], logger=self.get_logger(),
                                     cpu_threads=p["cpu_threads"])
        self.config = controller_config(p, self.runtime.spec)
        self.monitor = CollisionMonitor(monitor_config(p)) if p["collision_monitor"] else None
        self.controller = NavigationController(self.runtime, self.config, self.monitor)
        self.camera, self.scanner = depth_camera(p), scanner_pose(p)

        self._image_msg: Image | CompressedImage | None = None  # newest frame not yet converted
        self._image_received = 0.0
        self._safety_msg: Image | LaserScan | None = None  # newest safety input not yet converted
        self._safety_received = 0.0
        # The depth camera's intrinsics: from its CameraInfo (or, while that is unusable, why), or
        # from the parameters when depth_camera_info is false.
        self._depth_intrinsics: CameraIntrinsics | SafetyInputError | None = None
        self._use_depth_camera_info = bool(p["depth_camera_info"])
        self._status = ""
        self._last_log: dict[str, float] = {}
        self.goal_transform_timeout = p["goal_transform_timeout"]
        self.transforms = TransformBuffer()
        self._pending_goal: GoalRequest | None = None
        self._driving: navigate_action.ActiveGoal | None = None   # the action goal being driven to

        self.cmd_vel_pub = self.create_publisher(Twist, CMD_VEL_TOPIC, CMD_VEL_QOS)
        self.status_pub = self.create_publisher(String, STATUS_TOPIC, STATUS_QOS)
        if p["image_transport"] == "compressed":
            self.create_subscription(CompressedImage, COMPRESSED_IMAGE_TOPIC, self._on_image, IMAGE_QOS)
        else:
            self.create_subscription(Image, IMAGE_TOPIC, self._on_image, IMAGE_QOS)
        self.create_subscription(Odometry, ODOM_TOPIC, self._on_odom, ODOM_QOS)
        self.create_subscription(PoseStamped, GOAL_TOPIC, lambda msg: self._request_goal(msg, None), GOAL_QOS)
        if TFMessage is not None:
            self.create_subscription(TFMessage, TF_TOPIC, lambda msg: self._on_tf(msg, False), TF_QOS)
            self.create_subscription(TFMessage, TF_STATIC_TOPIC, lambda msg: self._on_tf(msg, True), TF_STATIC_QOS)
        else:
            self.get_logger().info("tf2_msgs is not installed: goals must be in the odometry frame")
        self.action_server = None
        if navigate_action.available():
            self.action_server = navigate_action.NavigateToPoseServer(self, self._request_goal, self._now)
        else:
            self.get_logger().info(f"nav2_msgs is not installed: no {navigate_action.ACTION_NAME} action, "
                                   f"goals on {self.resolve_topic_name(GOAL_TOPIC)} only")
        safety = "off"
        if self.monitor is not None and p["safety_input"] == "depth":
            self.create_subscription(Image, DEPTH_TOPIC, self._on_safety_input, DEPTH_QOS)
            safety = f"depth on {self.resolve_topic_name(DEPTH_TOPIC)}"
            if self._use_depth_camera_info:
                self.create_subscription(CameraInfo, DEPTH_CAMERA_INFO_TOPIC, self._on_depth_camera_info,
                                         CAMERA_INFO_QOS)
                safety += f" with {self.resolve_topic_name(DEPTH_CAMERA_INFO_TOPIC)}"
        elif self.monitor is not None:
            self.create_subscription(LaserScan, SCAN_TOPIC, self._on_safety_input, SCAN_QOS)
            safety = f"scan on {self.resolve_topic_name(SCAN_TOPIC)}"
        self.create_timer(self.config.control_period, self._on_control_tick)
        self._publish_status("idle")
        self.get_logger().info(
            f"navigating with {model_dir} at {p['control_rate_hz']:g} Hz, limits "
            f"{self.config.max_linear_speed:g} m/s, {self.config.max_angular_speed:g} rad/s, "
            f"collision monitor: {safety}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # Callbacks store; the control tick decides --------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage) -> None:
        self._image_msg, self._image_received = msg, self._now()

    def _on_safety_input(self, msg: Image | LaserScan) -> None:
        self._safety_msg, self._safety_received = msg, self._now()

    def _on_depth_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._depth_intrinsics = camera_info_intrinsics(msg)
        except SafetyInputError as err:
            self._depth_intrinsics = err

    def _on_odom(self, msg: Odometry) -> None:
        pose, twist = msg.pose.pose, msg.twist.twist
        p, q = pose.position, pose.orientation
        reading = OdometryReading(msg.header.frame_id, (p.x, p.y, p.z), (q.x, q.y, q.z, q.w),
                                  (twist.linear.x, twist.linear.y, twist.linear.z),
                                  (twist.angular.x, twist.angular.y, twist.angular.z))
        error = self.controller.set_odometry(reading, self._now())
        if error:
            # Under the cause of the status it leads to, so the two are logged once together.
            self._log_once(status_cause(f"{STOPPED}: invalid odometry: {error}"), f"invalid odometry: {error}")

    def _on_tf(self, msg, static: bool) -> None:
        for tf in msg.transforms:
            t, q = tf.transform.translation, tf.transform.rotation
            try:
                self.transforms.set_transform(tf.header.frame_id, tf.child_frame_id, stamp_seconds(tf.header.stamp),
                                              Transform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w)), static)
            except TransformError as err:
                self._log_once("invalid transform", f"invalid transform ignored: {err}")

    # Goals ------------------------------------------------------------------------------------------
    def _request_goal(self, msg: PoseStamped, action: navigate_action.ActiveGoal | None) -> None:
        """A goal from the topic or the action: resolved now, or at the next ticks while TF catches up."""
        if self._pending_goal is not None and self._pending_goal.action is not None:
            self.action_server.abort(self._pending_goal.action, "preempted by a newer goal")
        p = msg.pose.position
        self._pending_goal = GoalRequest((p.x, p.y, p.z), msg.header.frame_id, stamp_seconds(msg.header.stamp),
                                         self._now(), action)
        self._resolve_pending_goal()

    def _resolve_pending_goal(self) -> None:
        request, odom_frame = self._pending_goal, self.controller.odometry_frame
        if request is None or odom_frame is None:
            return   # no odometry yet: its frame is unknown, the goal waits
        position = request.position
        if request.frame_id.lstrip("/") != odom_frame:
            if TFMessage is None:
                return self._reject_goal(request, f"goal frame {request.frame_id!r} is not the odometry frame "
                                                  f"{odom_frame!r} and tf2_msgs is not installed")
            try:
                position = self.transforms.lookup(odom_frame, request.frame_id, request.stamp).apply(position)
            except TransformError as err:
                if self._now() - request.received < self.goal_transform_timeout:
                    return   # the transform may still come
                return self._reject_goal(request, f"no transform from {request.frame_id!r} to {odom_frame!r}: {err}")
        self._pending_goal = None
        reason = self.controller.set_goal(position[0], position[1], odom_frame)
        if reason:
            return self._reject_goal(request, reason)
        if self._driving is not None and self._driving is not request.action:
            self.action_server.abort(self._driving, "preempted by a newer goal")
        self._driving = request.action
        source = "action" if request.action is not None else "topic"
        self.get_logger().info(f"new goal ({position[0]:.2f}, {position[1]:.2f}) in {odom_frame!r} from the {source}"
                               + ("" if request.frame_id == odom_frame else
                                  f" (sent as {request.position[:2]} in {request.frame_id!r})"))

    def _reject_goal(self, request: GoalRequest, reason: str) -> None:
        """The goal is refused with its reason; the goal being driven to stays."""
        self._pending_goal = None
        self.get_logger().warning(f"goal rejected: {reason}")
        if request.action is not None:
            self.action_server.abort(request.action, f"goal rejected: {reason}")

    def _update_action(self, status: str) -> None:
        """Feedback for the action goal being driven to, and its end when reached."""
        goal = self._driving
        if goal is None:
            return
        if status == REACHED:
            self.action_server.succeed(goal)
            self._driving = None
            return
        distance, pose = self.controller.goal_distance, self.controller.pose
        if distance is None or pose is None:
            return
        current = PoseStamped()
        current.header.stamp = self.get_clock().now().to_msg()
        current.header.frame_id = self.controller.odometry_frame
        current.pose.position.x, current.pose.position.y = pose[0], pose[1]
        q = current.pose.orientation
        q.x, q.y, q.z, q.w = quaternion_from_yaw(pose[2])
        self.action_server.publish_feedback(goal, current, distance, self.config.max_linear_speed)

    def _on_control_tick(self) -> None:
        try:
            if self._driving is not None and self._driving.handle.is_cancel_requested:
                self.controller.clear_goal()
                self.action_server.cancelled(self._driving)
                self._driving = None
            self._resolve_pending_goal()
            if self._image_msg is not None:
                msg, self._image_msg = self._image_msg, None
                try:
                    rgb = image_msg_to_policy_rgb(msg, self.runtime.spec.image_height, self.runtime.spec.image_width)
                    self.controller.set_image(rgb, self._image_received)
                except ImageConversionError as err:
                    self.controller.set_image_error(str(err), self._image_received)
            if self._safety_msg is not None:
                msg, self._safety_msg = self._safety_msg, None
                self._update_monitor(msg)
            command = self.controller.tick(self._now())
        except Exception as err:  # noqa: BLE001 - one failed step must stop the robot, not kill the node
            first_line = (str(err).strip().splitlines() or [""])[0]
            command = self.controller.stop(f"{STOPPED}: error: {type(err).__name__}: {first_line}")
        twist = Twist()
        twist.linear.x, twist.angular.z = command.linear, command.angular
        self.cmd_vel_pub.publish(twist)
        if command.status != self._status:
            self._publish_status(command.status)
        self._update_action(command.status)

    def _update_monitor(self, msg: Image | LaserScan) -> None:
        """The newest safety input as obstacles for the monitor, or the reason it is unusable."""
        assert self.monitor is not None
        try:
            if isinstance(msg, Image):
                obstacles = depth_obstacles(depth_image_metres(msg), self.camera, self.monitor.config,
                                            self._camera_intrinsics())
            else:
                obstacles = scan_obstacles(*scan_ranges(msg), self.scanner)
            self.monitor.set_obstacles(obstacles, self._safety_received, self.controller.pose)
        except SafetyInputError as err:
            self.monitor.set_input_error(str(err), self._safety_received)

    def _camera_intrinsics(self) -> CameraIntrinsics | None:
        """The depth camera's CameraInfo, None to use the parameters' field of view, or the reason
        depth cannot be placed in the world yet (raised: the monitor then stops forward motion)."""
        if not self._use_depth_camera_info:
            return None
        if self._depth_intrinsics is None:
            raise SafetyInputError(f"no camera_info on {self.resolve_topic_name(DEPTH_CAMERA_INFO_TOPIC)} yet")
        if isinstance(self._depth_intrinsics, SafetyInputError):
            raise self._depth_intrinsics
        return self._depth_intrinsics

    # Output ---------------------------------------------------------------------------------------
    def _publish_status(self, status: str) -> None:
        self._status = status
        self.status_pub.publish(String(data=status))
        # The monitor acting is normal operation (and its distance changes every period): info, and
        # once per cause like every other status; a stop for any other reason is a warning.
        warning = status.startswith(STOPPED) and not status.startswith(MONITOR_ACTING)
        self._log_once(status_cause(status), status if warning else f"status: {status}", warning)

    def _log_once(self, cause: str, message: str, warning: bool = True) -> None:
        """Log once per cause, again only after WARNING_REPEAT_PERIOD."""
        now = time.monotonic()
        if now - self._last_log.get(cause, -math.inf) >= WARNING_REPEAT_PERIOD:
            self._last_log[cause] = now
            # Two call sites: rclpy refuses one call site logging at two severities.
            if warning:
                self.get_logger().warning(message)
            else:
                self.get_logger().info(message)

    def publish_stop(self) -> None:
        """Publish zero velocity and wait briefly for it to be delivered."""
        self.cmd_vel_pub.publish(Twist())
        self.cmd_vel_pub.wait_for_all_acked(Duration(seconds=0.5))

    def destroy_node(self) -> None:
        if self.context.ok():
            self.publish_stop()
        for goal in (self._driving, self._pending_goal and self._pending_goal.action):
            if goal:
                self.action_server.abort(goal, "navigation node shutting down")
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    stop, dds_profile = node_process.init(args)
    try:
        node = NavigationNode()
    except (BundleError, ValueError, InvalidParameterTypeException, OSError) as err:
        # A bad bundle or parameter file: one line saying why, and no node driving blind.
        rclpy.logging.get_logger(NODE_NAME).fatal(" ".join(str(err).split()))
        rclpy.try_shutdown()
        return 1
    if dds_profile:
        node.get_logger().info(f"Fast DDS profile {dds_profile}")
    try:
        # Single-threaded on purpose: callbacks only store messages and the timer does all the work
        # (a policy step is about a millisecond), so nothing runs concurrently and nothing needs a lock.
        node_process.spin(node, stop)
    finally:
        node.destroy_node()  # publishes zero velocity while the context is still up
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
