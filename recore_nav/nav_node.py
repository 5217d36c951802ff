"""The navigation node: camera + odometry + goal in, velocity commands out, with a learned policy.

A thin ROS 2 shell around `NavigationController` (the decisions) and `PolicyRuntime` (the
policy). Callbacks only store the newest message; one timer at the control rate converts the
newest image, asks the controller for a command and publishes it, so a fast camera never builds
a queue and every command comes from the freshest inputs.

  subscribes  camera/image_raw (sensor_msgs/Image, best effort, depth 1), odom (nav_msgs/Odometry),
              goal_pose (geometry_msgs/PoseStamped, in the odometry frame)
  publishes   cmd_vel (geometry_msgs/Twist, every control period), navigation_status
              (std_msgs/String on change, latched: idle | navigating | reached | stopped: <reason>)

Topic names are fixed and relative; remap them for a robot (`-r cmd_vel:=/base/cmd_vel`).
Run: python -m recore_nav.nav_node --ros-args --params-file config/robot.yaml
"""

from __future__ import annotations

import faulthandler
import math
import signal
import sys
import time

import rclpy
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image
from std_msgs.msg import String

from recore_nav import task
from recore_nav.bundle import BundleError
from recore_nav.geometry import yaw_from_quaternion
from recore_nav.image_conversion import ImageConversionError, image_msg_to_policy_rgb
from recore_nav.navigation_controller import STOPPED, ControllerConfig, NavigationController
from recore_nav.policy import PROVIDER_CHOICES, PolicyRuntime
from recore_nav.resources import default_model_dir
from recore_nav.ros_interface import (CMD_VEL_QOS, CMD_VEL_TOPIC, GOAL_QOS, GOAL_TOPIC, IMAGE_QOS, IMAGE_TOPIC,
                                      ODOM_QOS, ODOM_TOPIC, STATUS_QOS, STATUS_TOPIC, use_large_shm_transport)

NODE_NAME = "navigation_node"
# The same warning cause is logged again at most this often (seconds).
WARNING_REPEAT_PERIOD = 10.0

# name -> (default, description). Every parameter the node reads, declared at start-up.
PARAMETERS: dict[str, tuple[object, str]] = {
    "model_dir": ("", "policy bundle directory with policy.onnx + policy.json "
                      "(empty: models/recore_pointnav in the package's share directory)"),
    "providers": ("auto", f"onnxruntime providers: {', '.join(PROVIDER_CHOICES)} "
                          "(auto: CUDA if it really loads, else CPU)"),
    "cpu_threads": (1, "onnxruntime intra-op threads on the CPU provider"),
    "control_rate_hz": (task.CONTROL_RATE_HZ, "rate of velocity commands and policy steps, Hz (the policy's training rate)"),
    "goal_tolerance": (task.SUCCESS_RADIUS, "the goal is reached within this distance, m"),
    "image_timeout": (0.5, "stop when the newest camera image is older than this, s"),
    "odom_timeout": (0.5, "stop when the newest odometry is older than this, s"),
    "max_linear_speed": (0.0, "linear speed limit, m/s (<= 0: the bundle's max_linear_speed)"),
    "max_angular_speed": (0.0, "angular speed limit, rad/s (<= 0: the bundle's max_angular_speed)"),
    "max_linear_accel": (1.0, "linear acceleration limit when speeding up, m/s^2 (slowing down is immediate)"),
    "max_angular_accel": (3.0, "angular acceleration limit when speeding up, rad/s^2 (slowing down is immediate)"),
}


class NavigationNode(Node):
    """Drives to the newest goal with the policy bundle in `model_dir`; zero velocity when in doubt."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        for name, (default, description) in PARAMETERS.items():
            # Read once at start-up, hence read-only: a change at run time would not take effect.
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        for name in ("control_rate_hz", "goal_tolerance", "image_timeout", "odom_timeout",
                     "max_linear_accel", "max_angular_accel"):
            if not (isinstance(p[name], (int, float)) and math.isfinite(p[name]) and p[name] > 0):
                raise ValueError(f"parameter {name} must be a positive number, got {p[name]!r}")

        model_dir = p["model_dir"] or str(default_model_dir())
        self.runtime = PolicyRuntime(model_dir, providers=p["providers"], logger=self.get_logger(),
                                     cpu_threads=p["cpu_threads"])
        spec = self.runtime.spec
        self.config = ControllerConfig(
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
        )
        self.controller = NavigationController(self.runtime, self.config)

        self._image_msg: Image | None = None  # newest frame not yet converted
        self._image_received = 0.0
        self._status = ""
        self._last_warning: dict[str, float] = {}

        self.cmd_vel_pub = self.create_publisher(Twist, CMD_VEL_TOPIC, CMD_VEL_QOS)
        self.status_pub = self.create_publisher(String, STATUS_TOPIC, STATUS_QOS)
        self.create_subscription(Image, IMAGE_TOPIC, self._on_image, IMAGE_QOS)
        self.create_subscription(Odometry, ODOM_TOPIC, self._on_odom, ODOM_QOS)
        self.create_subscription(PoseStamped, GOAL_TOPIC, self._on_goal, GOAL_QOS)
        self.create_timer(self.config.control_period, self._on_control_tick)
        self._publish_status("idle")
        self.get_logger().info(
            f"navigating with {model_dir} at {p['control_rate_hz']:g} Hz, limits "
            f"{self.config.max_linear_speed:g} m/s, {self.config.max_angular_speed:g} rad/s")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # Callbacks store; the control tick decides --------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self._image_msg, self._image_received = msg, self._now()

    def _on_odom(self, msg: Odometry) -> None:
        pose = msg.pose.pose
        q = pose.orientation
        yaw = yaw_from_quaternion(q.x, q.y, q.z, q.w)
        error = self.controller.set_odometry(pose.position.x, pose.position.y, yaw, msg.header.frame_id, self._now())
        if error:
            self._warn("invalid odometry", f"invalid odometry: {error}")

    def _on_goal(self, msg: PoseStamped) -> None:
        position = msg.pose.position
        reason = self.controller.set_goal(position.x, position.y, msg.header.frame_id)
        if reason:
            self.get_logger().warning(f"goal rejected: {reason}")
        else:
            self.get_logger().info(f"new goal ({position.x:.2f}, {position.y:.2f}) in {msg.header.frame_id!r}")

    def _on_control_tick(self) -> None:
        try:
            if self._image_msg is not None:
                msg, self._image_msg = self._image_msg, None
                try:
                    rgb = image_msg_to_policy_rgb(msg, self.runtime.spec.image_height, self.runtime.spec.image_width)
                    self.controller.set_image(rgb, self._image_received)
                except ImageConversionError as err:
                    self.controller.set_image_error(str(err), self._image_received)
            command = self.controller.tick(self._now())
        except Exception as err:  # noqa: BLE001 - one failed step must stop the robot, not kill the node
            first_line = (str(err).strip().splitlines() or [""])[0]
            command = self.controller.stop(f"{STOPPED}: error: {type(err).__name__}: {first_line}")
        twist = Twist()
        twist.linear.x, twist.angular.z = command.linear, command.angular
        self.cmd_vel_pub.publish(twist)
        if command.status != self._status:
            self._publish_status(command.status)

    # Output ---------------------------------------------------------------------------------------
    def _publish_status(self, status: str) -> None:
        self._status = status
        self.status_pub.publish(String(data=status))
        if status.startswith(STOPPED):
            cause = ":".join(status.split(":")[:2])  # e.g. "stopped: invalid image"
            self._warn(cause, status)
        else:
            self.get_logger().info(f"status: {status}")

    def _warn(self, cause: str, message: str) -> None:
        """Log a warning once per cause, again only after WARNING_REPEAT_PERIOD."""
        now = time.monotonic()
        if now - self._last_warning.get(cause, -math.inf) >= WARNING_REPEAT_PERIOD:
            self._last_warning[cause] = now
            self.get_logger().warning(message)

    def publish_stop(self) -> None:
        """Publish zero velocity and wait briefly for it to be delivered."""
        self.cmd_vel_pub.publish(Twist())
        self.cmd_vel_pub.wait_for_all_acked(Duration(seconds=0.5))

    def destroy_node(self) -> None:
        if self.context.ok():
            self.publish_stop()
        super().destroy_node()


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(args: list[str] | None = None) -> int:
    dds_profile = use_large_shm_transport()
    # Our own SIGINT/SIGTERM handling: rclpy's handler shuts the context down before we could
    # publish the last zero Twist; ours unwinds `spin` and leaves the context up for it.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    # SIGINT explicitly too: a process started in the background of a non-interactive shell (CI,
    # nohup) inherits SIGINT ignored, and Python then installs no handler of its own for it.
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    # `kill -USR1 <pid>` prints every thread's stack, even while blocked inside rclpy's C code:
    # how to see where a node that does not stop is stuck (the test harness does it on a hang).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        node = NavigationNode()
    except (BundleError, ValueError, InvalidParameterTypeException, OSError) as err:
        # A bad bundle or parameter file: one line saying why, and no node driving blind.
        rclpy.logging.get_logger(NODE_NAME).fatal(" ".join(str(err).split()))
        rclpy.try_shutdown()
        return 1
    except KeyboardInterrupt:  # stopped while loading
        rclpy.try_shutdown()
        return 0
    if dds_profile:
        node.get_logger().info(f"Fast DDS profile {dds_profile}")
    try:
        # Single-threaded on purpose: callbacks only store messages and the timer does all the work
        # (a policy step is about a millisecond), so nothing runs concurrently and nothing needs a lock.
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()  # publishes zero velocity while the context is still up
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
